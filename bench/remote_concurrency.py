"""Throughput of RemoteSampler (``openai`` or ``bedrock`` backend) against the fake LLM server; cost of throttling.

Usage: python bench/remote_concurrency.py [--quick] [--backend openai|bedrock] [--latency 0.1] [--fake-process]

1. Concurrency 1, 8, 32, 64: N requests through the sampler's ``generate`` against a fake answering after
   ``--latency`` seconds; requests/s against the ideal concurrency / latency (goal: ratio >= 0.9). The same
   requests sent by bare threads (one ``requests.Session`` each, or one boto3 client; no retries, no adaptive
   limit) are the baseline: when both miss, the bottleneck is outside the sampler (the fake, the GIL, the CPU).
2. Concurrency 32 with 20% of attempts throttled (HTTP 429, Retry-After 0.05 s) against the same run
   unthrottled: wall-time ratio (goal <= 1.5), and every request answered exactly once (no lost or duplicated
   rows). "mean in flight" is measured at the fake: the sum of its request durations over the wall time;
   "CPU/wall" is this process's CPU time over wall time (near 1.0: one core, or the GIL, is saturated).

``--fake-process`` runs the fake in a child process, so that it does not share the benchmark's GIL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.fakes

from eval_pipeline.inference.base import GenerationParams, GenerationRequest  # noqa: E402
from eval_pipeline.inference.bedrock import BedrockSampler  # noqa: E402
from eval_pipeline.inference.openai_compat import OpenAISampler  # noqa: E402
from eval_pipeline.inference.remote import RemoteSampler, RetryPolicy  # noqa: E402
from tests.fakes.llm_server import FakeLLMServer, FakeLLMServerProcess  # noqa: E402

CONCURRENCY = (1, 8, 32, 64)
THROTTLED_CONCURRENCY = 32
THROTTLE_RATE = 0.2
RETRY_AFTER_S = 0.05
MODEL = "served-model"
BEDROCK_MODEL = "amazon.nova-micro-v1:0"
PARAMS = GenerationParams(max_tokens=16)
RATIO_GOAL, THROTTLE_GOAL = 0.9, 1.5


Fake = FakeLLMServer | FakeLLMServerProcess


def start_fake(latency_s: float, child: bool) -> Fake:
    """The fake in this process, or in a child process so that it does not share the benchmark's GIL."""
    if child:
        return FakeLLMServerProcess("--latency", str(latency_s), "--retry-after", str(RETRY_AFTER_S))
    return FakeLLMServer(latency_s=latency_s, retry_after_s=RETRY_AFTER_S, max_recent=20_000)


def reset_fake(fake: Fake, **settings: Any) -> None:
    """Clear the counters and apply settings (throttle_rate...)."""
    fake.reset()
    fake.configure(**settings)


@dataclass
class Run:
    """One timed batch of requests."""

    requests: int
    wall_s: float
    outputs: list[str | None]
    errors: list[str | None]
    latencies: list[float]
    stats: dict[str, Any]
    cpu_s: float
    """CPU time of this process (all threads, the fake's too when it runs here) during the run."""

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    @property
    def cpu_share(self) -> float:
        """CPU time over wall time: near 1.0, one core (or the GIL) is saturated."""
        return self.cpu_s / self.wall_s

    @property
    def mean_in_flight(self) -> float:
        """Average requests being handled at the fake over the run (its request durations / wall time)."""
        return sum(r["duration_s"] for r in self.stats["recent"]) / self.wall_s


def make_requests(count: int, tag: str) -> list[GenerationRequest]:
    return [GenerationRequest(f"{tag}-{i}", 0, ({"role": "user", "content": f"{tag} question {i}"},))
            for i in range(count)]


def make_sampler(backend: str, fake: Fake, concurrency: int) -> RemoteSampler:
    """A fresh sampler, as a pipeline run makes one (Bedrock's own back-off stands in for Retry-After, which
    the fake sends on OpenAI 429s only)."""
    if backend == "bedrock":
        return BedrockSampler(BEDROCK_MODEL, n_concurrent=concurrency, timeout_s=30.0,
                              retry=RetryPolicy(max_attempts=10, base_delay_s=RETRY_AFTER_S))
    return OpenAISampler(f"{fake.url}/v1", MODEL, n_concurrent=concurrency, timeout_s=30.0,
                         retry=RetryPolicy(max_attempts=10))


def sampler_run(backend: str, fake: Fake, concurrency: int, requests: list[GenerationRequest],
                **settings: Any) -> Run:
    """The requests through the sampler's ``generate``."""
    reset_fake(fake, **settings)
    sampler = make_sampler(backend, fake, concurrency)
    started, cpu = time.perf_counter(), time.process_time()
    completions = sampler.generate(requests, PARAMS)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Run(len(requests), wall, [c.output for c in completions], [c.error for c in completions],
               [c.latency_s or 0.0 for c in completions], fake.stats(recent=20_000), cpu)


def bare_run(backend: str, fake: Fake, concurrency: int, requests: list[GenerationRequest]) -> Run:
    """The same requests from ``concurrency`` plain threads: a requests.Session each (openai), or one boto3
    client made before the threads start (bedrock); no retries, no adaptive limit. The baseline."""
    reset_fake(fake, throttle_rate=0.0)
    if backend == "bedrock":
        sampler = make_sampler(backend, fake, concurrency)
        assert isinstance(sampler, BedrockSampler)
        client = sampler.client  # made once, before the threads start

        def send(request: GenerationRequest) -> None:
            client.converse(modelId=BEDROCK_MODEL, messages=[
                {"role": "user", "content": [{"text": request.messages[-1]["content"]}]}],
                inferenceConfig={"maxTokens": PARAMS.max_tokens, "temperature": PARAMS.temperature})
    else:
        import requests as http

        from eval_pipeline.inference.openai_chat import chat_request

        local = threading.local()

        def send(request: GenerationRequest) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = http.Session()
            session.post(f"{fake.url}/v1/chat/completions", json=chat_request(request, PARAMS, MODEL),
                         timeout=30).raise_for_status()

    def timed(request: GenerationRequest) -> float:
        began = time.perf_counter()
        send(request)
        return time.perf_counter() - began

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(timed, requests))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Run(len(requests), wall, [], [], latencies, fake.stats(recent=20_000), cpu)


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall_s)


def table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(r[c].rjust(w) for c, w in zip(columns, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def concurrency_sweep(backend: str, fake: Fake, latency_s: float, quick: bool, repeats: int) -> list[float]:
    """Part 1; returns the sampler's ratio to the ideal per concurrency."""
    rows, ratios, overheads = [], [], []
    for concurrency in CONCURRENCY:
        count = min(256, max(20, 4 * concurrency)) if quick else min(512, max(40, 8 * concurrency))
        requests = make_requests(count, f"c{concurrency}")
        ideal = concurrency / latency_s
        sampled = best([sampler_run(backend, fake, concurrency, requests) for _ in range(repeats)])
        bare = best([bare_run(backend, fake, concurrency, requests) for _ in range(repeats)])
        lost = sum(e is not None for e in sampled.errors)
        ratios.append(sampled.rps / ideal)
        overheads.append(sampled.rps / bare.rps)
        rows.append({
            "concurrency": str(concurrency), "requests": str(count), "wall s": f"{sampled.wall_s:.2f}",
            "req/s": f"{sampled.rps:.1f}", "ideal req/s": f"{ideal:.0f}", "ratio": f"{sampled.rps / ideal:.2f}",
            "bare ratio": f"{bare.rps / ideal:.2f}",
            "p50 latency ms": f"{statistics.median(sampled.latencies) * 1000:.0f}",
            "fake max in flight": str(sampled.stats["max_in_flight"]),
            "mean in flight": f"{sampled.mean_in_flight:.1f}", "CPU/wall": f"{sampled.cpu_share:.2f}",
            "errors": str(lost)})
    print(table(rows))
    worst = min(ratios)
    print(f"\nworst ratio to ideal: {worst:.2f} (goal >= {RATIO_GOAL}): {'ok' if worst >= RATIO_GOAL else 'MISSED'}")
    print(f"sampler req/s over bare threads' req/s, worst: {min(overheads):.2f} (1.00: RemoteSampler costs nothing; "
          "when both miss the goal, look at the fake, the GIL and CPU/wall)")
    return ratios


def throttled_comparison(backend: str, fake: Fake, quick: bool, repeats: int) -> bool:
    """Part 2; returns True when every request was answered exactly once in both runs."""
    count = 160 if quick else 640
    requests = make_requests(count, "t")
    clean = best([sampler_run(backend, fake, THROTTLED_CONCURRENCY, requests, throttle_rate=0.0)
                  for _ in range(repeats)])
    throttled = best([sampler_run(backend, fake, THROTTLED_CONCURRENCY, requests, throttle_rate=THROTTLE_RATE)
                      for _ in range(repeats)])
    expected = [f"echo: {r.messages[-1]['content']}" for r in requests]
    rows, sound = [], True
    for name, run in (("unthrottled", clean), (f"throttled {THROTTLE_RATE:.0%}", throttled)):
        completed = run.stats["completed"]
        right = sum(o == e for o, e in zip(run.outputs, expected, strict=True))
        once = len(completed) == count and all(n == 1 for n in completed.values())
        sound &= right == count and not any(run.errors) and once and not run.stats["duplicates"]
        rows.append({
            "run": name, "requests": str(count), "wall s": f"{run.wall_s:.2f}", "req/s": f"{run.rps:.1f}",
            "HTTP calls": str(run.stats["requests"]), "429s": str(run.stats["by_status"].get("429", 0)),
            "mean in flight": f"{run.mean_in_flight:.1f}", "CPU/wall": f"{run.cpu_share:.2f}",
            "right outputs": str(right),
            "errors": str(sum(e is not None for e in run.errors)),
            "answered once": f"{sum(n == 1 for n in completed.values())}/{count}",
            "duplicates": str(len(run.stats["duplicates"]))})
    print(table(rows))
    ratio = throttled.wall_s / clean.wall_s
    print(f"\nthrottled / unthrottled wall time at concurrency {THROTTLED_CONCURRENCY}: {ratio:.2f} "
          f"(goal <= {THROTTLE_GOAL}): {'ok' if ratio <= THROTTLE_GOAL else 'MISSED'}")
    print(f"rows lost or duplicated: {'none' if sound else 'YES: see the table'}")
    return sound


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, one repeat")
    parser.add_argument("--latency", type=float, default=0.1, help="the fake's latency per request, seconds")
    parser.add_argument("--fake-process", action="store_true", help="run the fake in a child process")
    parser.add_argument("--backend", choices=("openai", "bedrock"), default="openai",
                        help="OpenAISampler over requests, or BedrockSampler over boto3")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 2
    with start_fake(args.latency, args.fake_process) as fake:
        if args.backend == "bedrock":  # boto3 pointed at the fake, dummy credentials
            os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                              AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_BEDROCK_RUNTIME=fake.url,
                              AWS_EC2_METADATA_DISABLED="true")
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
                os.environ.pop(name, None)
        where = "child process" if args.fake_process else "in-process"
        print(f"{args.backend} backend; fake LLM server ({where}, latency {args.latency * 1000:.0f} ms) "
              f"at {fake.url}\n")
        print("1. requests/s against concurrency / latency")
        concurrency_sweep(args.backend, fake, args.latency, args.quick, repeats)
        print(f"\n2. {THROTTLE_RATE:.0%} throttled (Retry-After {RETRY_AFTER_S} s) against unthrottled, "
              f"concurrency {THROTTLED_CONCURRENCY}")
        sound = throttled_comparison(args.backend, fake, args.quick, repeats)
    return 0 if sound else 1


if __name__ == "__main__":
    sys.exit(main())
