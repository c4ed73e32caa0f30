"""Confidence intervals for a mean that stay inside the metric's range, one method per kind of data.

The kinds are tried in order and the first that applies gives the interval (``interval_method``); a new kind is a new
entry of ``INTERVAL_METHODS``, not a branch elsewhere:

- ``clopper_pearson``: every value at one end of a bounded range (0/1 scores). The exact binomial interval: its
  coverage is at least the nominal level for every true proportion and n (the Wilson interval's dips to 0.90 at
  p = 0.01, n = 10 do not happen), it never leaves [0, 1], and 0 of 40 gives [0, 0.088], not a certainty. It is the
  inversion of the same exact binomial test the paired comparison uses.
- ``korn_graubard``: other values in a bounded range (f1, rouge_l, judge scores, means over samples). Rescaled to
  [0, 1], the Clopper–Pearson interval at an effective sample size n* = n / φ · (z / t₍ₙ₋₁₎)² (Korn & Graubard
  1998, as for proportions estimated from survey data), where φ = s² / (m(1 − m)) is the dispersion relative to 0/1
  data of the same mean. φ is shrunk toward 1 by two pseudo-items, φ̃ = (n·φ + 2) / (n + 2), so a sample whose
  values barely vary (or not at all) never claims certainty, and skewed small samples keep their coverage.
- ``t``: an unbounded metric (perplexity and the like): the t interval, mean ± t₍ₙ₋₁₎ · s/√n.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaincinv, ndtri, stdtrit  # scipy.stats costs a second to import

from eval_pipeline.metrics.ranges import ValueRange

Interval = tuple[float, float]


def clopper_pearson(successes: ArrayLike, n: ArrayLike, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The exact (Clopper–Pearson) interval for a binomial proportion, elementwise; fractional ``successes`` and
    ``n`` are accepted (beta quantiles), as the effective-sample-size method needs."""
    alpha = 1.0 - confidence
    x, total = np.broadcast_arrays(np.asarray(successes, dtype=float), np.asarray(n, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x <= 0, 0.0, betaincinv(np.maximum(x, 1e-300), total - x + 1, alpha / 2))
        high = np.where(x >= total, 1.0, betaincinv(x + 1, np.maximum(total - x, 1e-300), 1 - alpha / 2))
    return low, high


def korn_graubard(mean: ArrayLike, variance: ArrayLike, n: ArrayLike,
                  confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The effective-sample-size Clopper–Pearson interval of a mean of values in [0, 1], elementwise, from the
    mean, the sample variance (ddof = 1) and n ≥ 2 (see the module docstring)."""
    m, s2, size = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (mean, variance, n)))
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where((m > 0) & (m < 1), s2 / (m * (1 - m)), 1.0)
        phi = (size * phi + 2) / (size + 2)
        z = ndtri(0.5 + confidence / 2)
        n_eff = size / phi * (z / stdtrit(size - 1, 0.5 + confidence / 2)) ** 2
    return clopper_pearson(m * n_eff, n_eff, confidence)


@dataclass(frozen=True)
class IntervalMethod:
    name: str
    applies: Callable[[np.ndarray, ValueRange], bool]
    interval: Callable[[np.ndarray, ValueRange, float], Interval]
    min_n: int
    """Fewer values than this give no interval (NaN)."""


def _at_bounds(values: np.ndarray, value_range: ValueRange) -> bool:
    return value_range.bounded and bool(np.isin(values, (value_range.low, value_range.high)).all())


def _clopper_pearson(values: np.ndarray, value_range: ValueRange, confidence: float) -> Interval:
    low, high = clopper_pearson(np.count_nonzero(values == value_range.high), values.size, confidence)
    return _scaled(float(low), float(high), value_range)


def _korn_graubard(values: np.ndarray, value_range: ValueRange, confidence: float) -> Interval:
    unit = (values - value_range.low) / value_range.width
    low, high = korn_graubard(unit.mean(), unit.var(ddof=1), unit.size, confidence)
    return _scaled(float(low), float(high), value_range)


def _t(values: np.ndarray, value_range: ValueRange, confidence: float) -> Interval:
    mean = float(values.mean())
    half = float(stdtrit(values.size - 1, 0.5 + confidence / 2)) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return max(mean - half, value_range.low), min(mean + half, value_range.high)


def _scaled(low: float, high: float, value_range: ValueRange) -> Interval:
    return value_range.low + low * value_range.width, value_range.low + high * value_range.width


INTERVAL_METHODS: tuple[IntervalMethod, ...] = (
    IntervalMethod("clopper_pearson", _at_bounds, _clopper_pearson, 1),
    IntervalMethod("korn_graubard", lambda values, value_range: value_range.bounded, _korn_graubard, 2),
    IntervalMethod("t", lambda values, value_range: True, _t, 2),
)


def interval_method(values: np.ndarray, value_range: ValueRange) -> IntervalMethod:
    """The first method of ``INTERVAL_METHODS`` that applies to these values in this range."""
    return next(method for method in INTERVAL_METHODS if method.applies(values, value_range))
