"""The range a metric's values can take: what keeps its intervals inside the possible.

A range is a property of the data a metric is computed from, not of its name: every ``score`` of the scores and
judgments tables (each scorer's and each judge metric's) lies in [0, 1] (``SCORE_RANGE``); a corpus metric such as
perplexity has no upper bound (``UNBOUNDED``). Aggregations take the range of the table they read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ValueRange:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"a value range needs low < high, got [{self.low}, {self.high}]")

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def width(self) -> float:
        return self.high - self.low

    def check(self, values: np.ndarray, what: str = "values") -> None:
        """Raise ValueError when a value lies outside the range (an interval could not honour it)."""
        outside = values[(values < self.low) | (values > self.high)]
        if outside.size:
            raise ValueError(f"{what} fall outside their range [{self.low:g}, {self.high:g}]: "
                             f"{', '.join(f'{v:g}' for v in outside[:5])}")


UNIT = ValueRange(0.0, 1.0)
UNBOUNDED = ValueRange(-math.inf, math.inf)
SCORE_RANGE = UNIT
"""Every score of the scores and judgments tables: scorers and judge metrics are normalized to [0, 1]."""
