"""A mean with its standard error and a confidence interval that stays inside the metric's range."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eval_pipeline.metrics.intervals import interval_method
from eval_pipeline.metrics.ranges import UNBOUNDED, ValueRange


@dataclass(frozen=True)
class MeanEstimate:
    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    method: str | None = None
    """The interval's method (``intervals.INTERVAL_METHODS``); None when there is no interval."""


def mean_estimate(values: np.ndarray, confidence: float = 0.95, *,
                  value_range: ValueRange = UNBOUNDED) -> MeanEstimate:
    """Mean, standard error (sample SD with ddof=1 over √n, as lm-eval reports it; NaN below n = 2) and the
    interval of the method that fits the values (``intervals.interval_method``), inside ``value_range``.

    The standard error is a plug-in figure (0 for 0 of 40); the interval is what shows the uncertainty.
    Raises ValueError when a value lies outside ``value_range``.
    """
    values = np.asarray(values, dtype=float)
    n = int(values.size)
    if n == 0:
        return MeanEstimate(math.nan, math.nan, math.nan, math.nan, 0)
    value_range.check(values)
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    method = interval_method(values, value_range)
    if n < method.min_n or not math.isfinite(mean):
        return MeanEstimate(mean, stderr, math.nan, math.nan, n)
    low, high = method.interval(values, value_range, confidence)
    return MeanEstimate(mean, stderr, low, high, n, method.name)
