"""Task-level bootstrap intervals: resample tasks (not rollouts) with replacement.

A metric over agent rollouts is a mean over tasks of a per-task value (a task's pass@k estimate, its success
rate, its mean reward). The rollouts of one task are not independent draws of the metric, the tasks are: so the
interval resamples whole tasks, B times with a seeded ``numpy.random.Generator``, and takes the percentile
interval of the resampled means. It is clipped to the metric's possible range ([0, 1] for rates; the reward's
observed bounds otherwise), so it never claims an impossible value.

Common random numbers: the metrics of one group of tasks are resampled with the same task indices (the same seed
and the same number of tasks), so metrics with identical per-task values get identical intervals, and differences
between them are not resampling noise. A metric that leaves some tasks out (pass@k of a task with fewer than k
valid rollouts) marks them NaN with ``allow_nan``: they are still drawn, and each resample's mean is over its drawn
tasks that have a value.

Degenerate cases: no task gives NaN for the value and the interval; one task gives its value and a NaN interval
(one task says nothing about how much tasks vary, and a zero-width interval would claim certainty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eval_pipeline.metrics.ranges import ValueRange

CI_METHOD = "task_bootstrap"
DEFAULT_RESAMPLES = 2000
_CHUNK_ELEMENTS = 4_000_000  # resampled indices held at once: bounds memory for many tasks


@dataclass(frozen=True)
class TaskBootstrap:
    """A mean over tasks with its bootstrap standard error and percentile interval."""

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    method: str | None = CI_METHOD
    """``task_bootstrap``; None when there is no interval (fewer than two tasks)."""


def task_bootstrap(per_task: np.ndarray, *, value_range: ValueRange, resamples: int = DEFAULT_RESAMPLES,
                   confidence: float = 0.95, rng: np.random.Generator | int = 0,
                   allow_nan: bool = False) -> TaskBootstrap:
    """The mean of ``per_task`` (one value per task) with a percentile interval from ``resamples`` resamples of
    the tasks with replacement, clipped to ``value_range``. ``stderr`` is the SD of the resampled means. With
    ``allow_nan``, a NaN is a task this metric leaves out (drawn, never averaged in; ``n`` counts the others).

    Raises ValueError when a value is NaN (unless ``allow_nan``) or outside ``value_range``, or the options are out
    of range.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    values = np.asarray(per_task, dtype=float).ravel()
    present = ~np.isnan(values)
    if not allow_nan and not present.all():
        raise ValueError("per-task values must not be NaN: leave such tasks out before the bootstrap")
    value_range.check(values[present], "per-task values")
    n = int(present.sum())
    if n == 0:
        return TaskBootstrap(math.nan, math.nan, math.nan, math.nan, 0, None)
    mean = float(values[present].mean())
    if n == 1:
        return TaskBootstrap(mean, math.nan, math.nan, math.nan, 1, None)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    means = resampled_means(values, int(resamples), generator)
    means = means[~np.isnan(means)]  # a resample that drew only left-out tasks has no mean
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    low = float(np.clip(low, value_range.low, value_range.high))
    high = float(np.clip(high, value_range.low, value_range.high))
    return TaskBootstrap(mean, float(means.std(ddof=1)), min(low, mean), max(high, mean), n)


def resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The means of ``resamples`` resamples of ``values`` with replacement, drawn in memory-bounded chunks. Every
    value is drawable (the indices depend only on ``rng`` and ``values.size``); a resample's mean is over its drawn
    values that are not NaN, and NaN when it drew none."""
    n = values.size
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty(resamples, dtype=float)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        indices = rng.integers(0, n, size=(stop - start, n))
        counts = present[indices].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start:stop] = filled[indices].sum(axis=1) / counts
    return means
