"""The per-item table people read: input, reference, output and each scorer's score side by side."""

from __future__ import annotations

import pandas as pd


def item_table(samples: pd.DataFrame, generations: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per sample × sample index, with a column per scorer."""
    wide = scores.pivot_table(index=["sample_id", "sample_index"], columns="scorer", values="score",
                              aggfunc="first", dropna=False).reset_index()
    wide.columns.name = None
    frame = generations[["sample_id", "sample_index", "model", "output", "finish_reason", "error"]].merge(
        samples[["sample_id", "category", "input", "reference"]], on="sample_id", how="left")
    return frame.merge(wide, on=["sample_id", "sample_index"], how="left")
