"""Scores into the ``metrics`` table: per model × metric, overall and per breakdown value."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.metrics.ranges import SCORE_RANGE, ValueRange
from eval_pipeline.metrics.summary import mean_estimate


def breakdown_column(samples: pd.DataFrame, key: str) -> pd.Series:
    """A breakdown key's value per sample, as text: a samples column, else a field of the row's metadata. A sample
    without one gets None (never NaN, which would sort among the values' strings)."""
    if key in samples.columns:
        values = samples[key]
    else:
        values = samples["metadata"].map(lambda m: json.loads(m or "{}").get(key))
    # an object Series built from a list keeps None (Series.map would turn a None among strings into NaN)
    return pd.Series([None if _missing(v) else str(v) for v in values], index=samples.index, dtype=object)


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def aggregate_scores(suite: str, samples: pd.DataFrame, scores: pd.DataFrame,
                     breakdown_keys: list[str] | tuple[str, ...] = (), *,
                     value_range: ValueRange = SCORE_RANGE) -> pd.DataFrame:
    """Mean over items of each item's mean score over its samples; errors counted, never averaged in.

    ``n`` counts items with at least one scored sample; ``errors`` counts score rows that failed. Each interval
    stays inside ``value_range`` (the scores table's [0, 1]) and ``ci_method`` names how it was computed.
    """
    groups = {key: breakdown_column(samples, key) for key in breakdown_keys}
    group_of = {key: dict(zip(samples["sample_id"], values, strict=True)) for key, values in groups.items()}
    rows = []
    for (model, metric), frame in scores.groupby(["model", "scorer"], sort=False):
        failed = frame["error"].notna()
        per_item = frame[~failed].groupby("sample_id", sort=False)["score"].mean()
        errors_per_item = frame[failed].groupby("sample_id", sort=False).size()
        rows.append(_row(suite, model, metric, None, None, per_item, int(failed.sum()), value_range))
        for key in breakdown_keys:
            item_group = per_item.index.map(group_of[key])
            error_group = errors_per_item.index.map(group_of[key])
            for value in sorted({v for v in group_of[key].values() if v is not None}):
                selected = per_item[np.asarray(item_group == value)]
                errors = int(errors_per_item[np.asarray(error_group == value)].sum())
                rows.append(_row(suite, model, metric, key, value, selected, errors, value_range))
    return pd.DataFrame(rows, columns=METRICS.names)


def _row(suite: str, model: str, metric: str, key: str | None, value: str | None, per_item: pd.Series,
         errors: int, value_range: ValueRange) -> dict[str, object]:
    try:
        estimate = mean_estimate(per_item.to_numpy(), value_range=value_range)
    except ValueError as exc:
        raise ValueError(f"metric {metric!r} of model {model!r}: {exc}") from exc
    return {
        "suite": suite, "model": model, "metric": metric, "breakdown_key": key, "breakdown_value": value,
        "value": estimate.value, "stderr": estimate.stderr, "ci_low": estimate.ci_low,
        "ci_high": estimate.ci_high, "n": estimate.n, "errors": errors, "k": None,
        "ci_method": estimate.method,
    }
