"""The suite report at scale: a 10,000-item, 3-model suite's tables, the time to write its report, the file's size,
and the time Chromium takes to open it from disk and render the item table.

The tables are built the way the pipeline builds them where it matters: precomputed answers (some right, some
wrong, a few errored), the generate kind's own scorers (exact_match, contains, f1) and aggregation (means with
intervals, by category), a judgments table written directly (a 0/0.5/1 score, a label and an explanation per item),
and the comparison of the models with the first one. Then:
  write:   ``write_suite_report`` (read the Parquet tables, build the page's data, render, write), median of
           --repeats, for the full suite and for its first 1,000 items (the goal: well under 0.2 s at 1,000);
  size:    the HTML file's size;
  render:  Chromium (Debian's, headless, through playwright) opens the file:// URL; the page's script sets
           ``window.__reportReadyMs`` (performance.now() when the first page of the table is drawn) and
           ``body[data-ready]``; printed with the wall time from ``goto`` to that marker, and the time a search
           takes to narrow the table.

    .venv/bin/python bench/report.py [--items 10000] [--models 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CATEGORIES = ("math", "geography", "history", "science", "language")


def build(folder: Path, items: int, models: int, suite_name: str = "bench_report") -> object:
    """Write the suite file and its tables under ``folder``; return the loaded suite."""
    import numpy as np
    import pandas as pd

    from eval_pipeline.metrics.model_comparison import compare_suite
    from eval_pipeline.suites import load_suite
    from eval_pipeline.suites.task_kinds import TASK_KINDS
    from tests.report_suites import write_stage

    names = [f"model_{chr(ord('a') + m)}" for m in range(models)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text('{"id": "q0", "prompt": "p", "answer": "a"}\n')
    model_lines = "\n".join(f"  - {{name: {n}, backend: bedrock, model: amazon.nova-micro-v1:0}}" for n in names)
    (folder / f"{suite_name}.yaml").write_text(f"""suite: {suite_name}
dataset: {{uri: qa.jsonl}}
models:
{model_lines}
baseline: {names[0]}
scorers: [exact_match, contains, f1]
judge:
  model: {{backend: bedrock, model: amazon.nova-pro-v1:0}}
  builtin_metrics: [Correctness]
breakdown_keys: [category]
""")
    suite = load_suite(folder / f"{suite_name}.yaml")
    kind = TASK_KINDS.get(suite.task)
    rng = np.random.default_rng(0)
    samples = pd.DataFrame({
        "sample_id": [f"item-{i:05d}" for i in range(items)],
        "input": [f"Question {i}: what is {i} times 3, and why does it matter in category "
                  f"{CATEGORIES[i % len(CATEGORIES)]}?" for i in range(items)],
        "input_kind": "text", "reference": [str(3 * i) for i in range(items)],
        "category": [CATEGORIES[i % len(CATEGORIES)] for i in range(items)], "metadata": "{}"})
    outputs = Path(folder / "outputs")
    write_stage(outputs, suite_name, "samples", samples)
    scored = {}
    for m, name in enumerate(names):
        right = rng.random(items) < 0.5 + 0.1 * m
        failed = rng.random(items) < 0.01
        answers = [None if f else (f"The answer is {3 * i}." if r else f"I think it is {3 * i + 1}, roughly.")
                   for i, (r, f) in enumerate(zip(right, failed, strict=True))]
        generations = pd.DataFrame({
            "sample_id": samples["sample_id"], "model": name, "sample_index": 0, "output": answers,
            "finish_reason": ["error" if a is None else "stop" for a in answers],
            "error": ["ThrottlingException: rate exceeded" if a is None else None for a in answers],
            "latency_s": rng.random(items), "cached": False,
            "request_hash": [f"{name}-{i}" for i in range(items)]})
        scores = kind.score(suite, samples, generations)
        level = rng.integers(0, 3, items) / 2.0
        judge_score = np.where(right, 1.0, level)
        judgments = pd.DataFrame({
            "sample_id": samples["sample_id"], "model": name, "sample_index": 0, "metric": "Correctness",
            "score": [None if a is None else s for a, s in zip(answers, judge_score, strict=True)],
            "label": [None if a is None else {1.0: "Correct", 0.5: "Partially correct", 0.0: "Incorrect"}[s]
                      for a, s in zip(answers, judge_score, strict=True)],
            "explanation": [None if a is None else f"The response says {a!r}; the reference is {3 * i}, so the "
                            f"answer is {'right' if r else 'not right'}." for i, (a, r) in
                            enumerate(zip(answers, right, strict=True))],
            "judge_model": "bedrock:amazon.nova-pro-v1:0",
            "error": ["generation failed" if a is None else None for a in answers]})
        judged = judgments.rename(columns={"metric": "scorer"})[["sample_id", "model", "sample_index", "scorer",
                                                                 "score", "error"]]
        metrics = kind.aggregate(suite, samples, generations, pd.concat([scores, judged], ignore_index=True))
        for stage, frame in (("generations", generations), ("scores", scores), ("judgments", judgments),
                             ("metrics", metrics)):
            write_stage(outputs, suite_name, stage, frame, name)
        scored[name] = pd.concat([scores, judged], ignore_index=True)
    comparison = compare_suite(suite_name, names[0], pd.concat(scored.values(), ignore_index=True))
    write_stage(outputs, suite_name, "comparison", comparison)
    return suite


def time_write(suite: object, outputs: Path, repeats: int,
               models: list[str] | None = None) -> tuple[float, float, str]:
    """(median wall seconds, median CPU seconds of this process, the path): on a shared machine the CPU time is
    what the write costs, the wall time what it took there."""
    from eval_pipeline.report import write_suite_report
    from eval_pipeline.resources.parquet_io import ParquetIOManager

    reader = ParquetIOManager(base_path=str(outputs))
    times, cpu, path = [], [], ""
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        path = write_suite_report(suite, reader, models=models)  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(times), statistics.median(cpu), path


def render(path: str, profile: Path) -> tuple[float, float, float]:
    """(performance.now() at the ready marker, wall seconds goto → marker, seconds for a search to narrow)."""
    from tests.browser import chromium_page

    with chromium_page(profile) as page:
        started = time.perf_counter()
        page.goto(Path(path).resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=120_000)
        wall = time.perf_counter() - started
        ready_ms = page.evaluate("window.__reportReadyMs")
        total = page.get_by_test_id("count-shown").inner_text()
        started = time.perf_counter()
        page.get_by_test_id("search").fill("item-0042")
        page.wait_for_function(f"document.querySelector('[data-testid=count-shown]').textContent !== '{total}'",
                               timeout=120_000)
        search = time.perf_counter() - started
    return ready_ms / 1000.0, wall, search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        suite = build(folder / "suite", args.items, args.models)
        print(f"built {args.items:,} items × {args.models} models in {time.perf_counter() - started:.1f} s")
        outputs = folder / "suite" / "outputs"
        time_write(suite, outputs, 1)  # imports and first reads out of the way
        seconds, cpu, path = time_write(suite, outputs, args.repeats)
        size = Path(path).stat().st_size
        print(f"write_suite_report, {args.items:,} items × {args.models} models: {seconds:.3f} s wall, {cpu:.3f} s "
              f"CPU (median of {args.repeats}); file {size / 1e6:.2f} MB")
        if args.items > 1000:
            small = build(folder / "small", 1000, args.models, suite_name="bench_report_small")
            time_write(small, folder / "small" / "outputs", 1)
            small_seconds, small_cpu, small_path = time_write(small, folder / "small" / "outputs", args.repeats)
            print(f"write_suite_report, 1,000 items × {args.models} models: {small_seconds:.3f} s wall, "
                  f"{small_cpu:.3f} s CPU; file {Path(small_path).stat().st_size / 1e6:.2f} MB")
        ready, wall, search = render(path, folder / "profile")
        load = os.getloadavg()[0]
        print(f"(load average {load:.1f} on {os.cpu_count()} CPUs while measuring)")
        print(f"Chromium: table rendered {ready:.2f} s after navigation start (performance.now); "
              f"goto → ready {wall:.2f} s wall; a search narrowed the table in {search:.2f} s")


if __name__ == "__main__":
    main()
