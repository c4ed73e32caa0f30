"""Agreement between an LLM judge's labels and human labels: raw accuracy and Cohen's κ."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Agreement:
    n: int            # pairs where both labels are present
    accuracy: float   # share of those pairs where judge == human; NaN when n == 0
    kappa: float      # Cohen's κ; 1.0 when both used one same label throughout; NaN when n == 0


def comparable_label(label: object) -> str | None:
    """A label as a comparable string, None when missing (None or NaN).

    Numbers (and strings that parse as finite numbers) become their shortest form: 1, 1.0, "1" and " 1.0 "
    are all "1", 0.5 and "0.50" are "0.5". Other labels are ``str()`` stripped, case kept; bools are
    "True"/"False" (not 1/0).
    """
    if label is None or (pd.api.types.is_scalar(label) and pd.isna(label)):  # None, NaN, pd.NA, NaT
        return None
    if isinstance(label, bool | np.bool_):
        return str(label)
    if isinstance(label, numbers.Integral):
        return str(int(label))
    if isinstance(label, numbers.Real):
        return _number(float(label))
    text = str(label).strip()
    try:
        value = float(text)
    except ValueError:
        return text
    return _number(value) if math.isfinite(value) else text


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)  # the shortest repr that round-trips: 0.5, 1e-07, inf


def agreement(judge: Sequence, human: Sequence) -> Agreement:
    """Accuracy and Cohen's κ = (p_o − p_e) / (1 − p_e) over pairs where both labels are present.

    Labels are compared after ``comparable_label``. When p_e == 1 (both raters gave every item one same label,
    which forces p_o == 1) κ is taken as 1.0, where the formula is 0/0.
    """
    if len(judge) != len(human):
        raise ValueError(f"judge and human differ in length: {len(judge)} vs {len(human)}")
    pairs = [(j, h) for j, h in ((comparable_label(a), comparable_label(b)) for a, b in zip(judge, human, strict=True))
             if j is not None and h is not None]
    n = len(pairs)
    if n == 0:
        return Agreement(0, math.nan, math.nan)
    agree = sum(j == h for j, h in pairs)
    judge_counts = Counter(j for j, _ in pairs)
    human_counts = Counter(h for _, h in pairs)
    expected = sum(count * human_counts[label] for label, count in judge_counts.items())  # p_e · n², exactly
    if expected == n * n:
        return Agreement(n, agree / n, 1.0)
    kappa = (agree * n - expected) / (n * n - expected)  # κ with p_o = agree / n and p_e = expected / n²
    return Agreement(n, agree / n, kappa)
