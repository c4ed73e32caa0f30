"""The process the kill -9 rollout test kills: 200 rollouts of the model (the fake OpenAI server) in a scripted
local environment, with the pipeline's request cache and rollout store under ``$EVAL_PIPELINE_HOME``.

``python -m tests.rollout_kill_worker URL RESETS EPISODES OUT``: the environment appends each reset's task id to
RESETS and each finished episode's task id to EPISODES; the final ``rollouts`` table is written to OUT (Parquet).
"""

from __future__ import annotations

import sys
from pathlib import Path

from eval_pipeline.agents.environment import AgentTask, Reset, Step
from eval_pipeline.agents.model_agent import model_agent_factory, model_agent_identity
from eval_pipeline.agents.rollout import RolloutSettings
from eval_pipeline.agents.rollout_store import RolloutStore
from eval_pipeline.agents.runner import run_rollouts
from eval_pipeline.data.messages import ChatMessage, user
from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.openai_compat import OpenAISampler
from eval_pipeline.paths import generation_cache_path

TASKS = 200
TURNS = 3
CONCURRENCY = 8
SERVED_MODEL = "served-model"


def _append(path: Path, line: str) -> None:
    with path.open("a") as handle:  # one short O_APPEND write per line: whole lines even across processes
        handle.write(line + "\n")


class CountingEnvironment:
    """Three turns: after each agent message, a user observation naming the task and the step; done at the
    third with reward 1 when the model echoed the last observation."""

    def __init__(self, resets: Path, episodes: Path) -> None:
        self.resets, self.episodes = resets, episodes
        self.task: AgentTask | None = None
        self.steps = 0

    def reset(self, task: AgentTask) -> Reset:
        self.task, self.steps = task, 0
        _append(self.resets, task.task_id)
        return Reset(messages=(user(task.prompt),))

    def step(self, message: ChatMessage) -> Step:
        assert self.task is not None
        self.steps += 1
        if self.steps >= TURNS:
            _append(self.episodes, self.task.task_id)
            return Step(reward=1.0 if message.content.startswith("echo: ") else 0.0, done=True)
        return Step(observations=(user(f"{self.task.task_id} step {self.steps}"),))

    def close(self) -> None:
        pass


def tasks() -> list[AgentTask]:
    return [AgentTask(task_id=f"task{i:03d}", prompt=f"task{i:03d}: count to three") for i in range(TASKS)]


def main(argv: list[str]) -> int:
    url, resets, episodes, out = argv
    sampler = OpenAISampler(f"{url}/v1", SERVED_MODEL, n_concurrent=1, timeout_s=10)
    params = GenerationParams(max_tokens=16)
    cache = RequestCache(generation_cache_path())
    result = run_rollouts(tasks(), model="fake-chat", make_agent=model_agent_factory(sampler, params, cache=cache),
                          make_environment=lambda: CountingEnvironment(Path(resets), Path(episodes)),
                          agent_identity=model_agent_identity(sampler, params), environment="python:counting",
                          settings=RolloutSettings(max_turns=5), concurrency=CONCURRENCY, store=RolloutStore())
    result.frame.to_parquet(out)
    print(result.stats.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
