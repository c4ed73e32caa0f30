"""What pairwise judging comes to: per item, who won in both orders; over items, win, loss, tie and
position-consistency rates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Winner = Literal["model", "baseline", "tie"]


@dataclass(frozen=True)
class PairwiseOutcome:
    """One item's result from both orders; ``consistent`` when both orders gave the same underlying verdict."""

    winner: Winner
    consistent: bool


@dataclass(frozen=True)
class PairwiseSummary:
    """Counts and rates (over ``n``) of the model's wins, losses and ties against the baseline."""

    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    loss_rate: float
    tie_rate: float
    consistency_rate: float


def summarize_pairwise(outcomes: Sequence[PairwiseOutcome]) -> PairwiseSummary:
    """Win/loss/tie counts and rates of the model against the baseline; NaN rates when there are no outcomes."""
    n = len(outcomes)
    wins = sum(outcome.winner == "model" for outcome in outcomes)
    losses = sum(outcome.winner == "baseline" for outcome in outcomes)
    ties = n - wins - losses
    consistent = sum(outcome.consistent for outcome in outcomes)

    def rate(count: int) -> float:
        return count / n if n else math.nan

    return PairwiseSummary(n, wins, losses, ties, rate(wins), rate(losses), rate(ties), rate(consistent))
