"""pass@k and pass^k of a scores table: per model × scorer, over tasks with ``num_samples`` samples each."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.metrics.passk import pass_at_k, pass_hat_k
from eval_pipeline.metrics.ranges import UNIT
from eval_pipeline.metrics.summary import mean_estimate


def task_counts(scores: pd.DataFrame, success_threshold: float = 1.0) -> pd.DataFrame:
    """Per model × scorer × task: ``n`` scored samples and ``c`` successes (score ≥ threshold); errors left out."""
    if not math.isfinite(success_threshold):
        raise ValueError(f"success_threshold must be a finite number, got {success_threshold!r}")
    scored = scores[scores["error"].isna() & scores["score"].notna()]
    correct = (scored["score"] >= success_threshold).astype(int)
    grouped = scored.assign(correct=correct).groupby(["model", "scorer", "sample_id"], sort=False)
    return grouped.agg(n=("correct", "size"), c=("correct", "sum")).reset_index()


def pass_k_rows(scores: pd.DataFrame, ks: Sequence[int], *, suite: str | None = None,
                success_threshold: float = 1.0) -> pd.DataFrame:
    """METRICS rows ``<scorer>.pass@k`` and ``<scorer>.pass^k`` (mean over tasks of the unbiased estimators, each in
    [0, 1], with an interval inside [0, 1] and its ``ci_method``); tasks with fewer than k samples are left out
    (``n`` counts the tasks used); ``errors`` counts error rows."""
    counts = task_counts(scores, success_threshold)
    errors = scores[scores["error"].notna()].groupby(["model", "scorer"]).size()
    rows = []
    for (model, scorer), frame in counts.groupby(["model", "scorer"], sort=False):
        for k in ks:
            for label, estimator in (("pass@", pass_at_k), ("pass^", pass_hat_k)):
                per_task = estimator(frame["n"].to_numpy(), frame["c"].to_numpy(), k)
                estimate = mean_estimate(per_task[~pd.isna(per_task)], value_range=UNIT)
                rows.append({"suite": suite, "model": model, "metric": f"{scorer}.{label}{k}", "breakdown_key": None,
                             "breakdown_value": None, "value": estimate.value, "stderr": estimate.stderr,
                             "ci_low": estimate.ci_low, "ci_high": estimate.ci_high, "n": estimate.n,
                             "errors": int(errors.get((model, scorer), 0)), "k": k,
                             "ci_method": estimate.method})
    return pd.DataFrame(rows, columns=METRICS.names)
