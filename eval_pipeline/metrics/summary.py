"""A mean with its standard error and a t-based confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit  # the t quantile; scipy.stats costs a second to import


@dataclass(frozen=True)
class MeanEstimate:
    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int


def mean_estimate(values: np.ndarray, confidence: float = 0.95) -> MeanEstimate:
    """Mean, standard error (sample SD with ddof=1 over √n) and the t interval; NaN where n is too small."""
    values = np.asarray(values, dtype=float)
    n = int(values.size)
    if n == 0:
        return MeanEstimate(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n < 2:
        return MeanEstimate(mean, math.nan, math.nan, math.nan, n)
    stderr = float(values.std(ddof=1) / math.sqrt(n))
    half_width = float(stdtrit(n - 1, 0.5 + confidence / 2)) * stderr
    return MeanEstimate(mean, stderr, mean - half_width, mean + half_width, n)
