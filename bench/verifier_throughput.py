"""Verified completions per second: HumanEval-mini completions checked in the sandbox, 1 worker against 2.

Usage: python bench/verifier_throughput.py [--n 64] [--workers 1 2] [--timeout 10]

Each completion is one ``check_humaneval`` run (prompt + completion, then the tests, with the verdict on its own
channel) in its own sandboxed ``python -I -S`` process; the N programs cycle through
examples/data/humaneval_mini_samples.jsonl (right and wrong answers mixed). One warm-up program runs first, so both
rows start with warm caches. Besides the wall-clock rate, each row gives the sandboxes' CPU time per problem, which
load from other processes does not inflate.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from eval_pipeline.sandbox import Program, run_programs  # noqa: E402
from eval_pipeline.scoring.code_exec import humaneval_program  # noqa: E402

DATA = REPO / "examples" / "data"


def programs(count: int) -> list[Program]:
    rows = (json.loads(line) for line in (DATA / "humaneval_mini.jsonl").read_text().splitlines())
    problems = {row["task_id"]: row for row in rows}
    completions = [json.loads(line) for line in (DATA / "humaneval_mini_samples.jsonl").read_text().splitlines()]
    chosen = [completions[i % len(completions)] for i in range(count)]
    return [humaneval_program(problems[c["task_id"]]["prompt"], c["completion"], problems[c["task_id"]]["test"],
                              problems[c["task_id"]]["entry_point"]) for c in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    batch = programs(args.n)
    warm = run_programs(batch[:1], workers=1, timeout_s=args.timeout)[0]
    print(f"{args.n} HumanEval-mini completions; sandbox isolation: {', '.join(warm.isolation) or 'rlimits only'}")
    rates = {}
    for workers in args.workers:
        cpu_before, started = _children_cpu_s(), time.perf_counter()
        results = run_programs(batch, workers=workers, timeout_s=args.timeout)
        elapsed, cpu = time.perf_counter() - started, _children_cpu_s() - cpu_before
        rates[workers] = args.n / elapsed
        passed = sum(r.passed for r in results)
        print(f"workers={workers}: {rates[workers]:6.1f} problems/s  ({elapsed:.2f} s, {passed}/{args.n} passed, "
              f"{elapsed / args.n * 1000:.0f} ms per problem, {cpu / args.n * 1000:.1f} ms sandbox CPU per problem)")
    if len(rates) > 1:
        low, high = min(rates), max(rates)
        print(f"speed-up workers={high} / workers={low}: {rates[high] / rates[low]:.2f}x")


def _children_cpu_s() -> float:
    """CPU seconds of the sandboxes reaped so far: a figure that other load on the machine does not inflate."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
