"""Judged items per second: LLM-as-judge against the fake Bedrock judge at 100 ms latency and concurrency 32.

Usage: python bench/judge_throughput.py [--items 960] [--latency 0.1] [--concurrency 32] [--repeats 2]

The fake runs in a child process (so it does not share this process's GIL) and answers every request with a
fixed verdict. ``run_judgments`` builds each judge prompt (fenced, injection-safe), sends it through the Bedrock
sampler, and parses the verdict: items/s against the ideal concurrency / latency (goal: ratio >= 0.9). The baseline,
side by side, is the same judge prompts (built beforehand) through the same sampler as plain requests, so the gap
between the two rows is what judging itself costs; where both miss the ideal, the client and the fake sharing this
machine's cores are the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.fakes, bench

import pandas as pd  # noqa: E402

from bench.remote_concurrency import BEDROCK_MODEL, table  # noqa: E402
from eval_pipeline.inference.base import GenerationParams, GenerationRequest  # noqa: E402
from eval_pipeline.inference.bedrock import BedrockSampler  # noqa: E402
from eval_pipeline.inference.remote import RetryPolicy  # noqa: E402
from eval_pipeline.judging import parse_custom_metrics  # noqa: E402
from eval_pipeline.judging.prompt import judge_messages  # noqa: E402
from eval_pipeline.judging.run import run_judgments  # noqa: E402
from tests.fakes.llm_server import FakeLLMServerProcess  # noqa: E402

NOTEBOOK_METRIC = REPO / "examples" / "metrics" / "positive_sentiment.json"
PARAMS = GenerationParams(max_tokens=64)
GOAL = 0.9


def items(count: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"item-{i}" for i in range(count)]
    samples = pd.DataFrame({"sample_id": ids, "input": [f"Question {i}: how are you?" for i in ids],
                            "input_kind": "text", "reference": None})
    generations = pd.DataFrame({"sample_id": ids, "model": "m", "sample_index": 0, "error": None,
                                "output": [f"I am great, thanks for asking ({i})!" for i in ids]})
    return samples, generations


def sampler(concurrency: int) -> BedrockSampler:
    return BedrockSampler(BEDROCK_MODEL, n_concurrent=concurrency, timeout_s=30.0, retry=RetryPolicy(max_attempts=5))


def judged_run(count: int, concurrency: int) -> tuple[float, int]:
    samples, generations = items(count)
    metrics = parse_custom_metrics(NOTEBOOK_METRIC)
    started = time.perf_counter()
    frame, _ = run_judgments(samples, generations, metrics, sampler(concurrency), PARAMS, judge_model="bench")
    return time.perf_counter() - started, int(frame["error"].notna().sum())


def plain_run(count: int, concurrency: int) -> tuple[float, int]:
    """The same judge prompts, built beforehand, sent as plain requests: no prompt building, no verdict parsing."""
    samples, generations = items(count)
    [metric] = parse_custom_metrics(NOTEBOOK_METRIC)
    requests = [GenerationRequest(sample_id, 0, judge_messages(metric, prompt=prompt, prediction=output,
                                                                ground_truth=None))
                for sample_id, prompt, output in zip(samples["sample_id"], samples["input"], generations["output"],
                                                     strict=True)]
    started = time.perf_counter()
    completions = sampler(concurrency).generate(requests, PARAMS)
    return time.perf_counter() - started, sum(c.error is not None for c in completions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=960)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ideal = args.concurrency / args.latency
    with FakeLLMServerProcess("--latency", str(args.latency),
                              "--answer", "The response is upbeat and helpful.\nVerdict: Good") as fake:
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                          AWS_ENDPOINT_URL_BEDROCK_RUNTIME=fake.url, AWS_EC2_METADATA_DISABLED="true")
        rows = []
        for label, run in (("plain requests (baseline)", plain_run), ("judged items", judged_run)):
            wall, errors = min(run(args.items, args.concurrency) for _ in range(args.repeats))
            rows.append({"what": label, "n": str(args.items), "wall s": f"{wall:.2f}",
                         "per s": f"{args.items / wall:.1f}", "ideal/s": f"{ideal:.0f}",
                         "ratio": f"{args.items / wall / ideal:.2f}", "errors": str(errors)})
    print(f"LLM-as-judge throughput: fake judge at {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, "
          f"goal ratio >= {GOAL}")
    print(table(rows))
    judged, plain = float(rows[1]["per s"]), float(rows[0]["per s"])
    print(f"judged / plain: {judged / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
