"""Each model against a baseline, per metric, on the items both scored: difference, CI and a paired test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eval_pipeline.metrics.paired import mcnemar_test, paired_bootstrap

COMPARISON_COLUMNS = ["suite", "metric", "model", "baseline", "n", "model_value", "baseline_value", "diff",
                      "ci_low", "ci_high", "p_value", "test", "b", "c"]

_PER_ITEM_COLUMNS = ("model", "metric", "sample_id", "score")


def compare_models(per_item: pd.DataFrame, baseline: str, *, suite: str = "", n_resamples: int = 10_000,
                   seed: int = 0) -> pd.DataFrame:
    """One row per metric × model ≠ baseline, paired on the items where both have a non-NaN score.

    ``diff`` is model − baseline over the paired items, its CI from ``paired_bootstrap``. When every paired
    score of both models is 0 or 1 the p-value is McNemar's exact test (``b``, ``c`` its discordant counts),
    else the bootstrap's (``b``, ``c`` None). A model with no paired items gets n = 0, NaN values and
    test "paired_bootstrap". Duplicate (model, metric, sample_id) rows are averaged. Sorted by metric, model.
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
            rows.append({"suite": suite, "metric": metric, "model": model, "baseline": baseline,
                         **_compare(x, y, n_resamples, seed)})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _compare(x: np.ndarray, y: np.ndarray, n_resamples: int, seed: int) -> dict[str, object]:
    n = int(x.size)
    boot = paired_bootstrap(x, y, n_resamples=n_resamples, seed=seed)
    row: dict[str, object] = {
        "n": n, "model_value": float(x.mean()) if n else math.nan, "baseline_value": float(y.mean()) if n else math.nan,
        "diff": boot.mean_diff, "ci_low": boot.ci_low, "ci_high": boot.ci_high,
        "p_value": boot.p_value, "test": "paired_bootstrap", "b": None, "c": None,
    }
    if n and np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all():
        result = mcnemar_test(x, y)
        row.update(p_value=result.p_value, test="mcnemar", b=result.b, c=result.c)
    return row
