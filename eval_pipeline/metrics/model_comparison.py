"""A suite's models against its baseline: paired differences per metric, and the pairwise judge's verdicts."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from eval_pipeline.data.schemas import COMPARISON
from eval_pipeline.metrics.comparison import compare_models
from eval_pipeline.metrics.multiplicity import with_holm
from eval_pipeline.metrics.paired_difference import mcnemar_difference
from eval_pipeline.metrics.pairwise_summary import PairwiseOutcome, summarize_pairwise
from eval_pipeline.metrics.ranges import ValueRange

PREFERENCE = "pairwise_preference"
POSITION_CONSISTENCY = "pairwise_position_consistency"


def item_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """model, metric, sample_id, score: each item's mean over its scored samples (errors left out)."""
    ok = scores[scores["error"].isna()]
    per_item = ok.groupby(["model", "scorer", "sample_id"], sort=False)["score"].mean().reset_index()
    return per_item.rename(columns={"scorer": "metric"})


def pairwise_rows(suite: str, pairwise: pd.DataFrame) -> pd.DataFrame:
    """Per model: the preference (win rate − loss rate, with the exact sign test over decisive items, McNemar's
    b = wins and c = losses, and its inverted Clopper–Pearson interval, so the two agree) and the judge's
    position-consistency rate."""
    rows = []
    for (model, baseline), frame in pairwise[pairwise["error"].isna()].groupby(["model", "baseline"], sort=True):
        wins = (frame["winner"] == "model").to_numpy(dtype=float)
        losses = (frame["winner"] == "baseline").to_numpy(dtype=float)
        sign = mcnemar_difference(wins, losses)
        summary = summarize_pairwise([PairwiseOutcome(winner, bool(consistent)) for winner, consistent
                                      in zip(frame["winner"], frame["consistent"], strict=True)])
        base = {"suite": suite, "model": model, "baseline": baseline, "n": summary.n}
        rows.append({**base, "metric": PREFERENCE, "model_value": summary.win_rate,
                     "baseline_value": summary.loss_rate, "diff": sign.diff, "ci_low": sign.ci_low,
                     "ci_high": sign.ci_high, "p_value": sign.p_value, "test": "sign_test", "b": sign.b,
                     "c": sign.c})
        rows.append({**base, "metric": POSITION_CONSISTENCY, "model_value": summary.consistency_rate,
                     "baseline_value": math.nan, "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                     "p_value": math.nan, "test": "position_consistency", "b": None, "c": None})
    return pd.DataFrame(rows, columns=COMPARISON.names)


def compare_suite(suite: str, baseline: str, scores: pd.DataFrame, pairwise: pd.DataFrame | None = None, *,
                  value_ranges: Mapping[str, ValueRange] | None = None) -> pd.DataFrame:
    """The COMPARISON table: every scorer and judge metric of every model against ``baseline``, with ``p_holm``
    adjusted over all of one model's rows (the pairwise preference included); ``value_ranges``: metrics whose
    scores are not in [0, 1]."""
    frames = [compare_models(item_scores(scores), baseline, suite=suite, value_ranges=value_ranges)]
    if pairwise is not None and not pairwise.empty:
        frames.append(pairwise_rows(suite, pairwise))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=COMPARISON.names)
    return with_holm(pd.concat(frames, ignore_index=True))
