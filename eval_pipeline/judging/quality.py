"""How far the judge can be trusted: its agreement with human ratings, where the dataset carries them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.judging.metric import JudgeMetric, normalize_label
from eval_pipeline.metrics.aggregate import breakdown_column
from eval_pipeline.metrics.agreement import agreement, comparable_label
from eval_pipeline.metrics.ranges import UNIT
from eval_pipeline.metrics.summary import mean_estimate


def human_level(metric: JudgeMetric, label: object) -> str | None:
    """A human rating as one of the metric's level definitions: by definition (case and punctuation aside) or
    by value (1, 1.0 and "1" alike)."""
    human = comparable_label(label)
    if human is None:
        return None
    for level in metric.rating_scale:
        if normalize_label(level.definition) == normalize_label(human) or comparable_label(level.value) == human:
            return level.definition
    return None


def judge_agreement(suite: str, model: str, samples: pd.DataFrame, judgments: pd.DataFrame,
                    metrics: Sequence[JudgeMetric], human_labels: Mapping[str, str]) -> pd.DataFrame:
    """METRICS rows ``judge.<metric>.accuracy`` (with its interval) and ``judge.<metric>.kappa`` (Cohen's κ) for
    each metric that has a human-label field; ``errors`` counts judged items whose human label fits no level."""
    rows = []
    by_name = {m.name: m for m in metrics}
    for name, field in human_labels.items():
        metric = by_name.get(name)
        if metric is None:
            continue
        human = dict(zip(samples["sample_id"], breakdown_column(samples, field), strict=True))
        judged = judgments[(judgments["metric"] == name) & judgments["error"].isna()]
        pairs = [(label, human_level(metric, human.get(sample_id)))
                 for sample_id, label in zip(judged["sample_id"], judged["label"], strict=True)
                 if human.get(sample_id) is not None]
        unmatched = sum(1 for _, h in pairs if h is None)
        pairs = [(j, h) for j, h in pairs if h is not None]
        result = agreement([j for j, _ in pairs], [h for _, h in pairs])
        accuracy = mean_estimate(np.array([float(j == h) for j, h in pairs]), value_range=UNIT)
        base = {"suite": suite, "model": model, "breakdown_key": None, "breakdown_value": None,
                "errors": unmatched, "k": None}
        rows.append({**base, "metric": f"judge.{name}.accuracy", "value": result.accuracy,
                     "stderr": accuracy.stderr, "ci_low": accuracy.ci_low, "ci_high": accuracy.ci_high,
                     "n": result.n, "ci_method": accuracy.method})
        rows.append({**base, "metric": f"judge.{name}.kappa", "value": result.kappa, "stderr": math.nan,
                     "ci_low": math.nan, "ci_high": math.nan, "n": result.n, "ci_method": None})
    return pd.DataFrame(rows, columns=METRICS.names)
