"""Rollouts per second against a fake model (50 ms a call) and a scripted environment, as a ratio of the ideal.

Usage: python bench/rollout_throughput.py [--rollouts 512] [--turns 4] [--latency 0.05] [--concurrency 32]

Each rollout is ``--turns`` model calls (the model agent, through ``complete_requests``) and environment steps.
With ``concurrency`` rollouts in flight and nothing but the model's latency, the ideal rate is
concurrency / (turns × latency) rollouts per second; the ratio achieved / ideal is the loop's efficiency (goal
≥ 0.8). Two rows: the loop as the pipeline runs it (SQLite request cache with its send-once claims, and the
rollout store), and the bare loop (no cache, no store). Each row also gives the loop's own CPU time per turn
(``time.process_time`` of this process, whose only other work is the fake model's sleeping).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from eval_pipeline.agents.environment import AgentTask, Reset, Step  # noqa: E402
from eval_pipeline.agents.model_agent import model_agent_factory, model_agent_identity  # noqa: E402
from eval_pipeline.agents.rollout import RolloutSettings  # noqa: E402
from eval_pipeline.agents.rollout_store import RolloutStore  # noqa: E402
from eval_pipeline.agents.runner import run_rollouts  # noqa: E402
from eval_pipeline.data.messages import ChatMessage, ToolSpec, user  # noqa: E402
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest  # noqa: E402
from eval_pipeline.inference.cache import RequestCache  # noqa: E402

TOOL = ToolSpec(name="lookup", description="look a key up",
                parameters={"type": "object", "properties": {"key": {"type": "string"}}})


class SleepingSampler:
    """A model whose every call takes ``latency_s`` of wall time and no CPU."""

    backend = "sleeping"

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "latency_s": self.latency_s}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        time.sleep(self.latency_s * len(requests))
        return [Completion(output=f"answer to {r.messages[-1].text}", tokens_in=10, tokens_out=3,
                           latency_s=self.latency_s) for r in requests]


class TurnsEnvironment:
    """Done after ``turns`` agent messages, each answered with one observation."""

    def __init__(self, turns: int) -> None:
        self.turns, self.steps, self.task_id = turns, 0, ""

    def reset(self, task: AgentTask) -> Reset:
        self.steps, self.task_id = 0, task.task_id
        return Reset(messages=(ChatMessage(role="system", content="answer briefly"), user(task.prompt)),
                     tools=(TOOL,))

    def step(self, message: ChatMessage) -> Step:
        self.steps += 1
        if self.steps >= self.turns:
            return Step(reward=1.0, done=True)
        return Step(observations=(user(f"{self.task_id} observation {self.steps}"),))

    def close(self) -> None:
        pass


def measure(args: argparse.Namespace, folder: Path | None, run: int) -> tuple[float, float]:
    """(rollouts per second, CPU seconds per turn) of one run; fresh tasks each run, so nothing is cached."""
    sampler, params = SleepingSampler(args.latency), GenerationParams()
    cache = RequestCache(folder / "generations.sqlite") if folder else None
    store = RolloutStore(folder / "rollouts.sqlite") if folder else None
    tasks = [AgentTask(task_id=f"r{run}-{i}", prompt=f"task {i}") for i in range(args.rollouts)]
    cpu, started = time.process_time(), time.perf_counter()
    result = run_rollouts(tasks, model="sleeping", make_agent=model_agent_factory(sampler, params, cache=cache),
                          make_environment=lambda: TurnsEnvironment(args.turns),
                          agent_identity=model_agent_identity(sampler, params), environment="python:bench",
                          settings=RolloutSettings(max_turns=args.turns), concurrency=args.concurrency, store=store)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    frame = result.frame
    assert frame["error"].isna().all() and (frame["num_turns"] == args.turns).all(), result.stats.summary()
    return args.rollouts / elapsed, cpu / (args.rollouts * args.turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=512)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    ideal = args.concurrency / (args.turns * args.latency)
    print(f"{args.rollouts} rollouts × {args.turns} turns, {args.latency * 1000:.0f} ms a model call, concurrency "
          f"{args.concurrency}: ideal {ideal:.1f} rollouts/s")
    with tempfile.TemporaryDirectory() as tmp:
        for run, (label, folder) in enumerate([("with cache + store", Path(tmp)), ("bare loop", None)]):
            rate, cpu_per_turn = measure(args, folder, run)
            print(f"{label:>18}: {rate:6.1f} rollouts/s  ratio {rate / ideal:.2f} of ideal (goal >= 0.8)  "
                  f"loop CPU {cpu_per_turn * 1000:.2f} ms per turn")


if __name__ == "__main__":
    main()
