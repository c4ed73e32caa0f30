"""The tables behind one training-loop evaluation (a benchmark through the sampler, or harbor tasks through the
rollout engine), and where its upload went."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from eval_pipeline.agents.runner import RolloutStats
    from eval_pipeline.inference.runner import GenerationStats


@dataclass
class BenchmarkRun:
    """The tables behind one ``evaluate`` call, and where its upload went (or why it failed)."""

    step: int | None
    samples: pd.DataFrame
    generations: pd.DataFrame
    scores: pd.DataFrame
    metrics: pd.DataFrame
    values: dict[str, float]
    stats: GenerationStats | RolloutStats
    uploaded_to: str | None = None
    upload_error: str | None = None


@dataclass
class HarborRun(BenchmarkRun):
    """A harbor-engine evaluation: ``generations`` is the ``rollouts`` table (one row per trial)."""

    @property
    def rollouts(self) -> pd.DataFrame:
        return self.generations
