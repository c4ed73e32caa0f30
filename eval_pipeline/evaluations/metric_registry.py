"""Registered metric names of the training-loop evaluator, and their values over per-item rewards.

``mean_reward`` (mean over items of each item's mean reward), ``pass_rate`` (share of items whose mean reward
reaches the success threshold), ``avg`` (mean over every sample), ``pass@k`` and ``pass^k`` for any k ≥ 1
(unbiased estimators of ``metrics/passk.py`` per item, success = reward ≥ threshold, averaged over the items
with at least k samples; NaN when none has).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.metrics.aggregate import breakdown_column
from eval_pipeline.metrics.passk import pass_at_k, pass_hat_k

DEFAULT_METRICS = ("mean_reward", "pass_rate")
PLAIN_METRICS = ("mean_reward", "pass_rate", "avg")
_PASS_K = re.compile(r"^pass([@^])([1-9][0-9]*)$")


@dataclass(frozen=True)
class RegisteredMetric:
    name: str
    kind: str
    """``mean_reward`` | ``pass_rate`` | ``avg`` | ``pass@`` | ``pass^``"""
    k: int | None = None

    def value(self, rewards: Sequence[np.ndarray], success_threshold: float) -> float:
        """The metric over items, each given as the array of its scored samples' rewards."""
        items = [np.asarray(r, dtype=float) for r in rewards if len(r)]
        if not items:
            return float("nan")
        if self.kind == "mean_reward":
            return float(np.mean([item.mean() for item in items]))
        if self.kind == "pass_rate":
            return float(np.mean([item.mean() >= success_threshold for item in items]))
        if self.kind == "avg":
            return float(np.concatenate(items).mean())
        k = self.k or 1
        per_item = [(len(item), int((item >= success_threshold).sum())) for item in items if len(item) >= k]
        if not per_item:
            return float("nan")
        estimate = pass_at_k if self.kind == "pass@" else pass_hat_k
        return float(np.mean([estimate(n, c, k) for n, c in per_item]))


def parse_metric(name: str) -> RegisteredMetric:
    """A registered metric by name; an unknown name is an input error listing the known ones."""
    if name in PLAIN_METRICS:
        return RegisteredMetric(name, name)
    match = _PASS_K.match(name)
    if match:
        return RegisteredMetric(name, f"pass{match.group(1)}", int(match.group(2)))
    raise EvalInputError(f"unknown metric {name!r}; registered metrics: {', '.join(PLAIN_METRICS)}, pass@<k>, "
                         "pass^<k>", field="metrics")


def parse_metrics(names: Sequence[str]) -> list[RegisteredMetric]:
    """The named metrics (the defaults when none is named), duplicates dropped."""
    return [parse_metric(name) for name in dict.fromkeys(names or DEFAULT_METRICS)]


def metric_values(metrics: list[RegisteredMetric], samples: pd.DataFrame, rewards: dict[str, np.ndarray],
                  mean_rows: pd.DataFrame, success_threshold: float, breakdown_keys: Sequence[str]) -> dict[str, float]:
    """The metric dict, overall and per breakdown value (``<metric>/<key>=<value>``): ``mean_reward`` read from the
    aggregated table's rows ``mean_rows`` (the pipeline's number), the others from each item's ``rewards``."""

    def compute(ids: list[str], key: str | None, value: str | None) -> dict[str, float]:
        out = {}
        for metric in metrics:
            if metric.kind == "mean_reward":
                out[metric.name] = _table_value(mean_rows, key, value)
            else:
                out[metric.name] = metric.value([rewards[i] for i in ids if i in rewards], success_threshold)
        return out

    values = compute(list(samples["sample_id"]), None, None)
    for key in breakdown_keys:
        groups = pd.Series(breakdown_column(samples, key).to_numpy(), index=samples["sample_id"])
        for value in sorted({v for v in groups if v is not None}):
            ids = list(groups.index[np.asarray(groups == value)])
            values |= {f"{name}/{key}={value}": number for name, number in compute(ids, key, value).items()}
    return values


def _table_value(rows: pd.DataFrame, key: str | None, value: str | None) -> float:
    selected = rows[rows["breakdown_key"].isna()] if key is None else rows[
        (rows["breakdown_key"] == key) & (rows["breakdown_value"] == value)]
    return float(selected["value"].iloc[0]) if len(selected) else float("nan")
