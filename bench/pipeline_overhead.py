"""Pipeline overhead of `eval-pipeline run` over the bare scoring work, on precomputed suites of growing size.

For each size N it builds an N-item gen_qa dataset with precomputed answers and times, side by side:
  bare:     the library alone in this process (read + convert, look up responses, score, aggregate);
  cold:     `eval-pipeline run --json` in a fresh process on a fresh state folder (imports, creating the Dagster
            instance and the MLflow store, Parquet IO, MLflow logging);
  warm:     the same command again on that state folder (what every later run costs).
Goal: pipeline − bare under 15 s at 1,000 items, and the per-item cost linear (overhead roughly flat in N).

    .venv/bin/python bench/pipeline_overhead.py [--sizes 250 500 1000 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval_pipeline.data.formats import load_samples  # noqa: E402
from eval_pipeline.inference.base import GenerationParams  # noqa: E402
from eval_pipeline.inference.precomputed import PrecomputedSampler  # noqa: E402
from eval_pipeline.inference.runner import run_generations  # noqa: E402
from eval_pipeline.metrics import aggregate_scores  # noqa: E402
from eval_pipeline.scoring.registry import score_generations  # noqa: E402
from eval_pipeline.suites import load_suite  # noqa: E402

SCORERS = ["exact_match", "f1", "rouge_l", "contains"]


def build_suite(folder: Path, size: int) -> Path:
    data = folder / "data"
    data.mkdir(parents=True)
    with (data / "qa.jsonl").open("w") as qa, (data / "answers.jsonl").open("w") as answers:
        for i in range(size):
            reference = f"answer number {i} is {i * 7 % 13}"
            qa.write(json.dumps({"id": f"q{i}", "prompt": f"What is item {i}?", "referenceResponse": reference,
                                 "category": f"c{i % 5}"}) + "\n")
            answers.write(json.dumps({"sample_id": f"q{i}", "response": reference if i % 3 else "no"}) + "\n")
    (folder / "evals").mkdir()
    path = folder / "evals" / "overhead.yaml"
    path.write_text(f"suite: overhead\ndataset: {{uri: data/qa.jsonl}}\n"
                    f"models: [{{name: answers, backend: precomputed, responses: data/answers.jsonl}}]\n"
                    f"scorers: {json.dumps(SCORERS)}\nbreakdown_keys: [category]\n")
    return path


def bare_seconds(suite_path: Path) -> float:
    suite = load_suite(suite_path)
    start = time.perf_counter()
    samples = load_samples(suite.resolve_uri(suite.dataset.uri))
    sampler = PrecomputedSampler.from_file(suite.resolve_uri(suite.models[0].responses or ""))
    generations, _ = run_generations(samples, "answers", sampler, GenerationParams())
    scores = score_generations(samples, generations, list(suite.scorers))
    aggregate_scores(suite.suite, samples, scores, suite.breakdown_keys)
    return time.perf_counter() - start


def pipeline_seconds(suite_path: Path, home: Path) -> float:
    env = {"EVAL_PIPELINE_HOME": str(home), "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true",
           "HOME": str(home)}
    start = time.perf_counter()
    done = subprocess.run([str(REPO / ".venv" / "bin" / "eval-pipeline"), "run", str(suite_path), "--json"],
                          cwd=suite_path.parent.parent, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"eval-pipeline run failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"n{size}"
            suite_path = build_suite(folder, size)
            bare = bare_seconds(suite_path)
            cold = pipeline_seconds(suite_path, folder / "home")
            warm = pipeline_seconds(suite_path, folder / "home")
            rows.append((size, bare, warm))
            print(f"n={size:>5}  bare {bare:5.2f} s | cold run {cold:6.2f} s, overhead {cold - bare:6.2f} s | "
                  f"warm run {warm:6.2f} s, overhead {warm - bare:6.2f} s", flush=True)
    (first_n, first_bare, first_warm), (last_n, last_bare, last_warm) = rows[0], rows[-1]
    slope = ((last_warm - last_bare) - (first_warm - first_bare)) / (last_n - first_n) * 1000
    at_1000 = next(((warm - bare) for n, bare, warm in rows if n == 1000), None)
    if at_1000 is not None:
        print(f"warm overhead at 1,000 items: {at_1000:.2f} s (goal < 15 s)")
    print(f"warm overhead growth: {slope:.2f} s per 1,000 extra items (flat = linear pipeline cost)")


if __name__ == "__main__":
    main()
