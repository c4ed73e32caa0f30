"""McNemar's exact test of one model against a baseline on the same paired 0/1 items; ``paired_difference``
inverts it into the comparison's interval, so the two always agree."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import bdtr  # the binomial CDF; scipy.stats costs a second to import


@dataclass(frozen=True)
class McNemarResult:
    b: int            # model correct (1), baseline wrong (0)
    c: int            # model wrong, baseline correct
    statistic: float  # (|b − c| − 1)² / (b + c), continuity corrected; NaN when b + c == 0
    p_value: float    # exact two-sided binomial p; 1.0 when b + c == 0


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
