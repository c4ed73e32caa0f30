"""The difference of two models on the same items, with an interval and a p-value from one procedure.

Each procedure's interval is the inversion of its own test, so the (1 − α) interval excludes 0 exactly when
p < α: a comparison can never show a "significant" interval beside a non-significant p-value, or the reverse.
The procedure is picked by the kind of paired scores (``paired_procedure``; a new kind is a new entry of
``PAIRED_PROCEDURES``):

- ``mcnemar`` (both models' scores all at the ends of the range, e.g. 0/1): the exact McNemar test, a two-sided
  binomial test on the b + c discordant pairs (p = min(1, 2·P[X ≤ min(b, c)]), X ~ Bin(b + c, ½)). Its exact
  inversion is the Clopper–Pearson interval for π = b / (b + c); the difference is (b − c)/n = (b + c)/n · (2π − 1),
  so the interval maps to [(b + c)/n · (2π_L − 1), (b + c)/n · (2π_U − 1)] (conditional on b + c, as the test is),
  within [−(b + c)/n, (b + c)/n]. With no discordant pair p = 1 and the interval is ±U, U the exact upper bound
  of the discordant share (1 − (α/2)^(1/n)): it contains 0 and still shows the uncertainty.
- ``paired_t`` (other bounded scores): the paired t-test on the per-item differences and its t interval, clipped
  to [−width, +width] of the score range. Chosen over a bootstrap or a permutation test because it is exactly
  invertible, deterministic and cheap; differences of bounded scores have finite variance, so the t reference is
  accurate from a few dozen items. Clipping to the possible range never moves an endpoint across 0, so the
  agreement with p holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr, stdtrit

from eval_pipeline.metrics.intervals import clopper_pearson
from eval_pipeline.metrics.paired import mcnemar_test
from eval_pipeline.metrics.ranges import SCORE_RANGE, ValueRange


@dataclass(frozen=True)
class PairedDifference:
    n: int
    diff: float        # mean of model − baseline over the paired items
    ci_low: float
    ci_high: float
    p_value: float     # two-sided, H0: no difference; the interval excludes 0 exactly when p < 1 − confidence
    test: str
    b: int | None = None   # discordant pairs (mcnemar only): model at the top of the range, baseline at the bottom
    c: int | None = None   # ... and the reverse


def mcnemar_difference(x: np.ndarray, y: np.ndarray, value_range: ValueRange = SCORE_RANGE,
                       confidence: float = 0.95) -> PairedDifference:
    """The exact McNemar test and its inverted Clopper–Pearson interval on the difference scale (module doc)."""
    n = int(x.size)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, "mcnemar")
    test = mcnemar_test((x == value_range.high).astype(float), (y == value_range.high).astype(float))
    b, c, p_value = test.b, test.c, test.p_value
    width = value_range.width
    diff = width * (b - c) / n
    discordant = b + c
    if discordant == 0:
        bound = width * (1.0 - ((1.0 - confidence) / 2) ** (1.0 / n))
        return PairedDifference(n, diff, -bound, bound, 1.0, "mcnemar", b, c)
    low, high = clopper_pearson(b, discordant, confidence)
    scale = width * discordant / n
    return PairedDifference(n, diff, scale * (2 * float(low) - 1), scale * (2 * float(high) - 1), p_value,
                            "mcnemar", b, c)


def paired_t_difference(x: np.ndarray, y: np.ndarray, value_range: ValueRange = SCORE_RANGE,
                        confidence: float = 0.95) -> PairedDifference:
    """The paired t-test and its t interval, clipped to ±the range's width (module doc). NaN below n = 2; when
    every difference is the same, the interval is that value and p is 1 for 0, else 0."""
    diffs = x - y
    n = int(diffs.size)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, "paired_t")
    mean = float(diffs.mean())
    if n < 2:
        return PairedDifference(n, mean, math.nan, math.nan, math.nan, "paired_t")
    stderr = float(diffs.std(ddof=1)) / math.sqrt(n)
    if stderr == 0:
        return PairedDifference(n, mean, mean, mean, 1.0 if mean == 0 else 0.0, "paired_t")
    p_value = float(2 * stdtr(n - 1, -abs(mean) / stderr))
    half = float(stdtrit(n - 1, 0.5 + confidence / 2)) * stderr
    bound = value_range.width
    return PairedDifference(n, mean, max(mean - half, -bound), min(mean + half, bound), p_value, "paired_t")


@dataclass(frozen=True)
class PairedProcedure:
    name: str
    applies: Callable[[np.ndarray, np.ndarray, ValueRange], bool]
    compare: Callable[[np.ndarray, np.ndarray, ValueRange, float], PairedDifference]


def _at_bounds(x: np.ndarray, y: np.ndarray, value_range: ValueRange) -> bool:
    ends = (value_range.low, value_range.high)
    return value_range.bounded and bool(np.isin(x, ends).all() and np.isin(y, ends).all())


PAIRED_PROCEDURES: tuple[PairedProcedure, ...] = (
    PairedProcedure("mcnemar", _at_bounds, mcnemar_difference),
    PairedProcedure("paired_t", lambda x, y, value_range: True, paired_t_difference),
)


def paired_difference(model: np.ndarray, baseline: np.ndarray, value_range: ValueRange = SCORE_RANGE,
                      confidence: float = 0.95) -> PairedDifference:
    """Model − baseline over paired items by the first procedure of ``PAIRED_PROCEDURES`` that applies; raises
    ValueError when a score lies outside ``value_range`` or the arrays do not pair."""
    x = np.asarray(model, dtype=float)
    y = np.asarray(baseline, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired arrays must be 1-D of one length, got shapes {x.shape} and {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("paired arrays contain NaN; drop unpaired items first")
    value_range.check(x, "model scores")
    value_range.check(y, "baseline scores")
    procedure = next(p for p in PAIRED_PROCEDURES if p.applies(x, y, value_range))
    return procedure.compare(x, y, value_range, confidence)
