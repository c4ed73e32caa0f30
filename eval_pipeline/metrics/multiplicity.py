"""Multiple-comparison control: Holm's step-down adjustment of a family of p-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

FAMILY = ("model", "baseline")
"""A comparison table's family: all metrics of one model against one baseline."""


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm-adjusted p-values, in the input order: the i-th smallest of m becomes max over j ≤ i of
    min(1, (m − j + 1)·p₍ⱼ₎). NaN entries stay NaN and do not count in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted


def with_holm(table: pd.DataFrame, family: tuple[str, ...] = FAMILY) -> pd.DataFrame:
    """The comparison table with ``p_holm``: ``p_value`` Holm-adjusted within each family (model × baseline)."""
    out = table.reset_index(drop=True)
    out["p_holm"] = np.nan
    if out.empty:
        return out
    for _, index in out.groupby(list(family), sort=False, dropna=False).groups.items():
        out.loc[index, "p_holm"] = holm(out.loc[index, "p_value"].to_numpy(dtype=float, na_value=np.nan))
    return out
