"""Each model against a baseline, per metric, on the items both scored: difference, CI and a paired test."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import COMPARISON
from eval_pipeline.metrics.multiplicity import with_holm
from eval_pipeline.metrics.paired_difference import paired_difference
from eval_pipeline.metrics.ranges import SCORE_RANGE, ValueRange

COMPARISON_COLUMNS = COMPARISON.names

_PER_ITEM_COLUMNS = ("model", "metric", "sample_id", "score")


def compare_models(per_item: pd.DataFrame, baseline: str, *, suite: str = "", confidence: float = 0.95,
                   value_range: ValueRange = SCORE_RANGE,
                   value_ranges: Mapping[str, ValueRange] | None = None) -> pd.DataFrame:
    """One row per metric × model ≠ baseline, paired on the items where both have a non-NaN score.

    ``diff`` is model − baseline over the paired items; its CI and ``p_value`` come from one procedure
    (``paired_difference``: exact McNemar with its inverted Clopper–Pearson interval when every paired score of
    both models is 0 or 1, ``b`` and ``c`` its discordant counts; else the paired t-test with its interval), so the
    CI excludes 0 exactly when p < 1 − confidence. ``p_holm`` is p Holm-adjusted over each model's metrics. A model
    with no paired items gets n = 0 and NaN values. Duplicate (model, metric, sample_id) rows are averaged.
    Sorted by metric, model. ``value_ranges`` gives a metric its own range (a rollout's reward), else
    ``value_range``.
    """
    missing = [column for column in _PER_ITEM_COLUMNS if column not in per_item.columns]
    if missing:
        raise ValueError(f"per_item lacks columns {missing}")
    models = sorted(per_item["model"].dropna().unique())
    if baseline not in models:
        raise ValueError(f"baseline {baseline!r} is not among the models in per_item: {models}")
    scored = per_item[per_item["score"].notna()]
    rows = []
    for metric in sorted(per_item["metric"].dropna().unique()):
        scores = scored[scored["metric"] == metric].groupby(["sample_id", "model"])["score"].mean().unstack()
        others = sorted(set(per_item.loc[per_item["metric"] == metric, "model"].dropna()) - {baseline})
        for model in others:
            if model in scores.columns and baseline in scores.columns:
                pairs = scores[[model, baseline]].dropna()
                x, y = pairs[model].to_numpy(dtype=float), pairs[baseline].to_numpy(dtype=float)
            else:
                x = y = np.empty(0)
            try:
                result = paired_difference(x, y, (value_ranges or {}).get(metric, value_range), confidence)
            except ValueError as exc:
                raise ValueError(f"metric {metric!r}, {model!r} vs {baseline!r}: {exc}") from exc
            rows.append({"suite": suite, "metric": metric, "model": model, "baseline": baseline,
                         "n": result.n, "model_value": float(x.mean()) if x.size else math.nan,
                         "baseline_value": float(y.mean()) if y.size else math.nan, "diff": result.diff,
                         "ci_low": result.ci_low, "ci_high": result.ci_high, "p_value": result.p_value,
                         "test": result.test, "b": result.b, "c": result.c})
    return with_holm(pd.DataFrame(rows, columns=COMPARISON_COLUMNS))
