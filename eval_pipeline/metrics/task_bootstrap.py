"""Task-level bootstrap intervals: resample tasks (not rollouts) with replacement.

A metric over agent rollouts is a mean over tasks of a per-task value (a task's pass@k estimate, its success
rate, its mean reward). The rollouts of one task are not independent draws of the metric, the tasks are: so the
interval resamples whole tasks, B times with a seeded ``numpy.random.Generator``, and takes the percentile
interval of the resampled means. It is clipped to the metric's possible range ([0, 1] for rates; the reward's
observed bounds otherwise), so it never claims an impossible value.

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
                   confidence: float = 0.95, rng: np.random.Generator | int = 0) -> TaskBootstrap:
    """The mean of ``per_task`` (one value per task) with a percentile interval from ``resamples`` resamples of
    the tasks with replacement, clipped to ``value_range``. ``stderr`` is the SD of the resampled means.

    Raises ValueError when a value is NaN or outside ``value_range``, or the options are out of range.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    values = np.asarray(per_task, dtype=float).ravel()
    if np.isnan(values).any():
        raise ValueError("per-task values must not be NaN: leave such tasks out before the bootstrap")
    value_range.check(values, "per-task values")
    n = int(values.size)
    if n == 0:
        return TaskBootstrap(math.nan, math.nan, math.nan, math.nan, 0, None)
    mean = float(values.mean())
    if n == 1:
        return TaskBootstrap(mean, math.nan, math.nan, math.nan, 1, None)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    means = resampled_means(values, int(resamples), generator)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    low = float(np.clip(low, value_range.low, value_range.high))
    high = float(np.clip(high, value_range.low, value_range.high))
    return TaskBootstrap(mean, float(means.std(ddof=1)), min(low, mean), max(high, mean), n)


def resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The means of ``resamples`` resamples of ``values`` with replacement, drawn in memory-bounded chunks."""
    n = values.size
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty(resamples, dtype=float)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means
