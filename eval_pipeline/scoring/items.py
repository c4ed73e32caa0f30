"""The per-item table people read: input, reference, output and each scorer's score side by side."""

from __future__ import annotations

import pandas as pd


def item_table(samples: pd.DataFrame, generations: pd.DataFrame, scores: pd.DataFrame,
               judgments: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per sample × sample index, with a column per scorer (and ``<metric>.explanation`` per judge
    metric when there are judgments)."""
    wide = scores.pivot_table(index=["sample_id", "sample_index"], columns="scorer", values="score",
                              aggfunc="first", dropna=False).reset_index()
    wide.columns.name = None
    frame = generations[["sample_id", "sample_index", "model", "output", "finish_reason", "error"]].merge(
        samples[["sample_id", "category", "input", "reference"]], on="sample_id", how="left")
    frame = frame.merge(wide, on=["sample_id", "sample_index"], how="left")
    if judgments is None or judgments.empty:
        return frame
    explanations = judgments.assign(column=judgments["metric"] + ".explanation").pivot_table(
        index=["sample_id", "sample_index"], columns="column", values="explanation", aggfunc="first").reset_index()
    explanations.columns.name = None
    return frame.merge(explanations, on=["sample_id", "sample_index"], how="left")
