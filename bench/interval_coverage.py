"""Coverage of the metrics table's 95% intervals, by simulation: 0/1 scores over a grid of p × n, and bounded
continuous (beta-distributed) scores.

Usage: python bench/interval_coverage.py [--runs 2000] [--seed 0]

Each 0/1 cell draws ``runs`` samples of n Bernoulli(p) scores and asks ``mean_estimate`` (the code behind every
METRICS row) for each sample's interval; it prints the share of intervals that hold p, the exact coverage
(Σ P[X = x] over the counts whose interval holds p) beside it, and the average width. Every interval is checked to
lie inside [0, 1]. The beta table does the same for bounded continuous scores. Prints the mean and the worst cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from eval_pipeline.metrics import SCORE_RANGE, mean_estimate  # noqa: E402
from eval_pipeline.metrics.intervals import korn_graubard  # noqa: E402

PS = (0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99)
NS = (5, 10, 40, 200)
BETA_CASES = ((2.0, 5.0), (0.5, 0.5), (5.0, 1.0), (1.0, 9.0), (0.3, 1.2))


def binary_table(runs: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows = []
    for n in NS:
        estimates = [mean_estimate(np.r_[np.ones(x), np.zeros(n - x)], value_range=SCORE_RANGE) for x in range(n + 1)]
        bounds = np.array([(e.ci_low, e.ci_high) for e in estimates])
        if not ((bounds >= 0) & (bounds <= 1)).all():
            raise AssertionError(f"an interval leaves [0, 1] at n = {n}")
        method = estimates[0].method
        for p in PS:
            counts = rng.binomial(n, p, size=runs)
            low, high = bounds[counts, 0], bounds[counts, 1]
            held = (bounds[:, 0] <= p) & (p <= bounds[:, 1])
            rows.append({"p": p, "n": n, "coverage": float(np.mean((low <= p) & (p <= high))),
                         "exact": float(stats.binom.pmf(np.arange(n + 1), n, p)[held].sum()),
                         "width": float(np.mean(high - low)), "method": method})
    return rows


def beta_table(runs: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in BETA_CASES:
        for n in NS:
            draws = rng.beta(a, b, size=(runs, n))
            low, high = korn_graubard(draws.mean(axis=1), draws.var(axis=1, ddof=1), n)
            if not ((low >= 0) & (high <= 1)).all():
                raise AssertionError(f"an interval leaves [0, 1] for Beta({a}, {b}), n = {n}")
            mean = a / (a + b)
            rows.append({"case": f"Beta({a:g}, {b:g})", "mean": mean, "n": n,
                         "coverage": float(np.mean((low <= mean) & (mean <= high))),
                         "width": float(np.mean(high - low))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    binary = binary_table(args.runs, args.seed)
    print(f"0/1 scores, {args.runs} runs a cell, method {binary[0]['method']}: coverage (exact) / mean width")
    print("p \\ n  " + "".join(f"{n:>24}" for n in NS))
    for p in PS:
        cells = [r for r in binary if r["p"] == p]
        print(f"{p:<6} " + "".join(f"{r['coverage']:>10.3f} ({r['exact']:.3f}) / {r['width']:.3f}" for r in cells))
    worst = min(binary, key=lambda r: r["coverage"])
    print(f"mean coverage {np.mean([r['coverage'] for r in binary]):.4f}; worst cell p = {worst['p']}, "
          f"n = {worst['n']}: {worst['coverage']:.3f} (exact {worst['exact']:.3f}); every interval inside [0, 1]")

    bounded = beta_table(args.runs, args.seed)
    print(f"\nbounded continuous scores, {args.runs} runs a cell, method korn_graubard: coverage / mean width")
    print("case           mean " + "".join(f"{n:>16}" for n in NS))
    for a, b in BETA_CASES:
        cells = [r for r in bounded if r["case"] == f"Beta({a:g}, {b:g})"]
        print(f"{cells[0]['case']:<14} {cells[0]['mean']:.3f}"
              + "".join(f"{r['coverage']:>8.3f} / {r['width']:.3f}" for r in cells))
    worst = min(bounded, key=lambda r: r["coverage"])
    print(f"mean coverage {np.mean([r['coverage'] for r in bounded]):.4f}; worst cell {worst['case']}, "
          f"n = {worst['n']}: {worst['coverage']:.3f}; every interval inside [0, 1]")


if __name__ == "__main__":
    main()
