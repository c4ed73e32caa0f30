"""Pipeline overhead of `eval-pipeline run` over the bare scoring work, on precomputed suites of growing size.

For each size N it builds an N-item gen_qa dataset with precomputed answers and times, side by side:
  bare:     the library alone (read + convert, look up responses, score, aggregate), timed inside a fresh process;
  cold:     `eval-pipeline run --json` in a fresh process on a fresh state folder (imports, creating the Dagster
            instance and the MLflow store, Parquet IO, MLflow logging);
  warm:     the same command again on that state folder (what every later run costs).
The fixed cost is pipeline − bare: the time until the command has printed its answer and exited. Since the item
traces are written to MLflow after the answer, by a helper left to finish alone, "logged" is the extra time until
that helper is done (it waits on the helper's lock; its CPU is not in the CPU column, which counts only the
processes the command waited for). Each figure is the median of --repeats runs (the machine may be shared); the
CPU seconds (user + system of the command and the helper processes it waited for) are shown beside, as they
move less than wall-clock time on a loaded machine.
With --baseline REV the same measurement runs, interleaved, on the code of a git revision (extracted with
`git archive` to a temporary folder and imported from there with this venv's python), and the ratios
new / baseline are printed for warm, cold, bare and the fixed costs.
Goal: warm fixed cost ≤ 3 s at 1,000 items, and the per-item cost linear (overhead roughly flat in N).

    .venv/bin/python bench/pipeline_overhead.py [--sizes 250 1000 2000] [--repeats 3] [--baseline HEAD]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SCORERS = ["exact_match", "f1", "rouge_l", "contains"]

BARE = """
import sys, time
from pathlib import Path
from eval_pipeline.data.formats import load_samples
from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.inference.precomputed import PrecomputedSampler
from eval_pipeline.inference.runner import run_generations
from eval_pipeline.metrics import aggregate_scores
from eval_pipeline.scoring.registry import score_generations
from eval_pipeline.suites import load_suite

suite = load_suite(Path(sys.argv[1]))
start = time.perf_counter()
samples = load_samples(suite.resolve_uri(suite.dataset.uri))
sampler = PrecomputedSampler.from_file(suite.resolve_uri(suite.models[0].responses or ""))
generations, _ = run_generations(samples, "answers", sampler, GenerationParams())
scores = score_generations(samples, generations, list(suite.scorers))
aggregate_scores(suite.suite, samples, scores, suite.breakdown_keys)
print(time.perf_counter() - start)
"""


@dataclass
class Tree:
    """A copy of the code measured: its name in the table and the folder ``eval_pipeline`` is imported from."""

    name: str
    root: Path
    times: dict[tuple[int, str], list[float]] = field(default_factory=dict)

    def env(self, home: Path) -> dict[str, str]:
        return {"EVAL_PIPELINE_HOME": str(home), "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true",
                "HOME": str(home), "PYTHONPATH": str(self.root)}

    def record(self, size: int, kind: str, seconds: float) -> None:
        self.times.setdefault((size, kind), []).append(seconds)

    def median(self, size: int, kind: str) -> float:
        return statistics.median(self.times[(size, kind)])

    def fixed(self, size: int, kind: str) -> float:
        return self.median(size, kind) - self.median(size, "bare")


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


def imported_from(tree: Tree, scratch: Path) -> str:
    """Where this tree's ``eval_pipeline`` is imported from under the bench's environment (checked, not assumed;
    every command runs outside the repository, whose folder would otherwise come first on ``sys.path``)."""
    done = subprocess.run([PYTHON, "-c", "import eval_pipeline; print(eval_pipeline.__file__)"], cwd=scratch,
                          env=tree.env(scratch), capture_output=True, text=True, check=True)
    location = done.stdout.strip()
    if not Path(location).resolve().is_relative_to(tree.root.resolve()):
        raise SystemExit(f"{tree.name}: eval_pipeline imported from {location}, not from {tree.root}")
    return location


def bare_seconds(tree: Tree, suite_path: Path, home: Path) -> float:
    done = subprocess.run([PYTHON, "-c", BARE, str(suite_path)], cwd=suite_path.parent.parent, env=tree.env(home),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree.name}: bare scoring failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def pipeline_seconds(tree: Tree, suite_path: Path, home: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, the command and the processes it waited for) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([PYTHON, "-m", "eval_pipeline.cli", "run", str(suite_path), "--json"],
                          cwd=suite_path.parent.parent, env=tree.env(home), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{tree.name}: eval-pipeline run failed:\n{done.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def background_seconds(home: Path) -> float:
    """How long after the command the MLflow helper it left running is done (its shared lock beside the store,
    ``eval_pipeline.tracking.worker.background_lock_path``; none, as in older code: 0)."""
    lock = home / "mlflow" / "mlflow.db.deferred.lock"
    start = time.perf_counter()
    if lock.exists():
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
    return time.perf_counter() - start


def extract(rev: str, folder: Path) -> Path:
    """The files of a git revision of this repository, in ``folder`` (``git archive``: no worktree to clean up)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def measure(trees: list[Tree], sizes: list[int], repeats: int, tmp: Path) -> None:
    """Each size, each repeat, each tree in turn (interleaved, so load from elsewhere hits both alike)."""
    for size in sizes:
        suite_path = build_suite(tmp / f"n{size}", size)
        for repeat in range(repeats):
            for tree in trees:
                home = tmp / f"n{size}" / f"home-{tree.name}-{repeat}"
                tree.record(size, "bare", bare_seconds(tree, suite_path, home))
                for kind in ("cold", "warm"):
                    wall, cpu = pipeline_seconds(tree, suite_path, home)
                    tree.record(size, kind, wall)
                    tree.record(size, f"{kind} cpu", cpu)
                    tree.record(size, f"{kind} logged", background_seconds(home))
        for tree in trees:
            print(f"n={size:>5} {tree.name:>9}  bare {tree.median(size, 'bare'):5.2f} s | "
                  f"cold {tree.median(size, 'cold'):6.2f} s, fixed {tree.fixed(size, 'cold'):6.2f} s | "
                  f"warm {tree.median(size, 'warm'):6.2f} s, fixed {tree.fixed(size, 'warm'):6.2f} s | "
                  f"cpu: cold {tree.median(size, 'cold cpu'):5.2f} s, warm {tree.median(size, 'warm cpu'):5.2f} s | "
                  f"logged: +{tree.median(size, 'warm logged'):4.2f} s after a warm run",
                  flush=True)


def print_ratios(new: Tree, baseline: Tree, sizes: list[int]) -> None:
    print(f"\nratios {new.name} / {baseline.name} (median of each):")
    print(f"{'n':>6}  {'warm':>6} {'cold':>6} {'bare':>6}  {'warm fixed':>10} {'cold fixed':>10}  "
          f"{'warm cpu':>8} {'cold cpu':>8}")
    for size in sizes:
        ratios = [new.median(size, kind) / baseline.median(size, kind)
                  for kind in ("warm", "cold", "bare", "warm cpu", "cold cpu")]
        fixed = [new.fixed(size, kind) / baseline.fixed(size, kind) for kind in ("warm", "cold")]
        print(f"{size:>6}  {ratios[0]:6.2f} {ratios[1]:6.2f} {ratios[2]:6.2f}  {fixed[0]:10.2f} {fixed[1]:10.2f}  "
              f"{ratios[3]:8.2f} {ratios[4]:8.2f}")


def print_growth(tree: Tree, sizes: list[int]) -> None:
    if 1000 in sizes:
        print(f"{tree.name}: warm fixed cost at 1,000 items: {tree.fixed(1000, 'warm'):.2f} s (goal ≤ 3 s)")
    if len(sizes) > 1:  # one size gives no growth
        first, last = min(sizes), max(sizes)
        slope = (tree.fixed(last, "warm") - tree.fixed(first, "warm")) / (last - first) * 1000
        print(f"{tree.name}: warm fixed cost growth {slope:.2f} s per 1,000 extra items (flat = linear pipeline cost)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is shown")
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision and print ratios")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    if min(sizes) < 1 or args.repeats < 1:
        parser.error("--sizes and --repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="pipeline-overhead-") as name:
        tmp = Path(name)
        trees = [Tree("new", REPO)]
        if args.baseline:
            trees.insert(0, Tree("baseline", extract(args.baseline, tmp / "baseline-tree")))
        for tree in trees:
            print(f"{tree.name}: eval_pipeline from {imported_from(tree, tmp)}", flush=True)
            warmup = build_suite(tmp / f"warmup-{tree.name}", 10)  # compiles the tree's bytecode, fills the disk cache
            pipeline_seconds(tree, warmup, tmp / f"warmup-{tree.name}" / "home")
        measure(trees, sizes, args.repeats, tmp)
        if args.baseline:
            print_ratios(trees[1], trees[0], sizes)
        for tree in trees:
            print_growth(tree, sizes)


if __name__ == "__main__":
    main()
