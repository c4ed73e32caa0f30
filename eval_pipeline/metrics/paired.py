"""Paired tests of one model against a baseline on the same items: exact McNemar and a paired bootstrap.

The comparison table does not use these directly: its interval and p-value come from one procedure
(``paired_difference``), which these building blocks cannot promise when mixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import bdtr  # the binomial CDF; scipy.stats costs a second to import

# Resample indices drawn per block, at most this many in all (≈ 32 MiB of int64), whatever n_resamples × n is.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class McNemarResult:
    b: int            # model correct (1), baseline wrong (0)
    c: int            # model wrong, baseline correct
    statistic: float  # (|b − c| − 1)² / (b + c), continuity corrected; NaN when b + c == 0
    p_value: float    # exact two-sided binomial p; 1.0 when b + c == 0


@dataclass(frozen=True)
class BootstrapResult:
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def _paired(model: ArrayLike, baseline: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both as 1-D float arrays of the same length, without NaNs."""
    x = np.asarray(model, dtype=float)
    y = np.asarray(baseline, dtype=float)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"paired arrays must be 1-D, got shapes {x.shape} and {y.shape}")
    if x.size != y.size:
        raise ValueError(f"paired arrays differ in length: {x.size} vs {y.size}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("paired arrays contain NaN; drop unpaired items first")
    return x, y


def mcnemar_test(model: ArrayLike, baseline: ArrayLike) -> McNemarResult:
    """McNemar's test on paired 0/1 outcomes: the discordant counts, the corrected χ² and the exact binomial p.

    p = min(1, 2·P[X ≤ min(b, c)]) with X ~ Bin(b + c, ½), the same as a two-sided exact binomial test.
    """
    x, y = _paired(model, baseline)
    if not (np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all()):
        raise ValueError("mcnemar_test needs binary (0/1) outcomes")
    b = int(np.count_nonzero((x == 1) & (y == 0)))
    c = int(np.count_nonzero((x == 0) & (y == 1)))
    discordant = b + c
    if discordant == 0:
        return McNemarResult(b, c, math.nan, 1.0)
    statistic = (abs(b - c) - 1) ** 2 / discordant
    p_value = min(1.0, 2.0 * float(bdtr(min(b, c), discordant, 0.5)))
    return McNemarResult(b, c, float(statistic), p_value)


def paired_bootstrap(model: ArrayLike, baseline: ArrayLike, *, n_resamples: int = 10_000,
                     confidence: float = 0.95, seed: int = 0) -> BootstrapResult:
    """Mean of model − baseline with a percentile bootstrap CI over items (same indices for both arrays).

    ``p_value`` is two-sided for H0 "mean diff = 0": twice the share of resampled mean diffs on the other
    side of 0 from the observed one (0 itself counted as the other side), capped at 1; 1.0 when the observed
    diff is exactly 0. Its resolution is 2 / n_resamples, so 0.0 means "below that". NaN CI and p when n < 2.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x, y = _paired(model, baseline)
    diffs = x - y
    n = int(diffs.size)
    if n == 0:
        return BootstrapResult(math.nan, math.nan, math.nan, math.nan, 0)
    mean_diff = float(diffs.mean())
    if n == 1:
        return BootstrapResult(mean_diff, math.nan, math.nan, math.nan, 1)
    means = _resampled_means(diffs, n_resamples, np.random.default_rng(seed))
    alpha = 1 - confidence
    ci_low, ci_high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    if mean_diff > 0:
        p_value = min(1.0, 2 * float(np.count_nonzero(means <= 0)) / n_resamples)
    elif mean_diff < 0:
        p_value = min(1.0, 2 * float(np.count_nonzero(means >= 0)) / n_resamples)
    else:
        p_value = 1.0
    return BootstrapResult(mean_diff, float(ci_low), float(ci_high), p_value, n)


def _resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples with replacement, drawn in blocks to bound memory."""
    n = values.size
    block = max(1, min(n_resamples, _BLOCK_ELEMENTS // n))
    dtype = np.int32 if n < 2**31 else np.int64  # int32 draws are faster
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        indices = rng.integers(0, n, size=(stop - start, n), dtype=dtype)
        means[start:stop] = values[indices].mean(axis=1)
    return means
