"""Coverage of the agent metrics' task-level bootstrap intervals, by simulation of a scripted environment.

Usage: python bench/rollout_interval_coverage.py [--seeds 200] [--tasks 200] [--group 8] [--resamples 2000]

Each seed draws the tasks' success probabilities p_t ~ Beta(a, b), then ``group`` rollouts per task that succeed
with probability p_t, and asks ``rollout_metrics`` (the code behind the rollouts' METRICS rows) for its intervals.
It prints, per metric, the share of intervals that hold the population value (E[1 − (1−p)^k] and E[p^k] under the
Beta, in closed form: the target when tasks are a sample of a population) and the share that hold the mean over
the seed's own tasks (mean_t 1 − (1−p_t)^k: a fixed task set, for which a task bootstrap is conservative), and the
mean interval width.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from eval_pipeline.metrics.rollout_metrics import rollout_metrics  # noqa: E402

KS = (1, 2, 4, 8)


def simulate(p: np.ndarray, group: int, rng: np.random.Generator) -> pd.DataFrame:
    hits = rng.random((p.size, group)) < p[:, None]
    tasks = np.repeat([f"t{t}" for t in range(p.size)], group)
    members = np.tile(np.arange(group), p.size)
    return pd.DataFrame({"sample_id": tasks, "model": "m", "sample_index": members,
                         "rollout_id": [f"{t}/{j}" for t, j in zip(tasks, members, strict=True)],
                         "reward": hits.ravel().astype(float), "success": hits.ravel(), "error": None,
                         "error_source": None})


def targets(a: float, b: float, p: np.ndarray) -> dict[str, tuple[float, float]]:
    """metric -> (population value, mean over these tasks)."""
    out = {"success_rate": (a / (a + b), float(p.mean()))}
    for k in KS:
        out[f"pass@{k}"] = (1 - math.exp(special.betaln(a, b + k) - special.betaln(a, b)),
                            float(np.mean(1 - (1 - p) ** k)))
        out[f"pass^{k}"] = (math.exp(special.betaln(a + k, b) - special.betaln(a, b)), float(np.mean(p ** k)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--beta", type=float, nargs=2, default=(2.0, 3.0), metavar=("A", "B"))
    args = parser.parse_args()
    a, b = args.beta
    stats: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        p = rng.beta(a, b, size=args.tasks)
        metrics = rollout_metrics(simulate(p, args.group, rng), pass_k_values=KS, resamples=args.resamples,
                                  seed=seed)
        overall = metrics[metrics["breakdown_key"].isna()].set_index("metric")
        for metric, (population, fixed) in targets(a, b, p).items():
            low, high = overall.loc[metric, "ci_low"], overall.loc[metric, "ci_high"]
            if not 0.0 <= low <= high <= 1.0:
                raise AssertionError(f"{metric}: interval [{low}, {high}] leaves [0, 1]")
            cell = stats.setdefault(metric, [0.0, 0.0, 0.0])
            cell[0] += low <= population <= high
            cell[1] += low <= fixed <= high
            cell[2] += high - low
    print(f"{args.seeds} seeds × {args.tasks} tasks × group {args.group}, p_t ~ Beta({a:g}, {b:g}), "
          f"B = {args.resamples}; nominal 0.95")
    print(f"{'metric':>14} {'population':>11} {'fixed tasks':>12} {'width':>8}")
    for metric, (population, fixed, width) in stats.items():
        print(f"{metric:>14} {population / args.seeds:11.3f} {fixed / args.seeds:12.3f} {width / args.seeds:8.4f}")
    mean = np.mean([cell[0] / args.seeds for cell in stats.values()])
    worst = min(stats, key=lambda m: stats[m][0])
    print(f"mean population coverage {mean:.3f}; worst {worst} {stats[worst][0] / args.seeds:.3f}")


if __name__ == "__main__":
    main()
