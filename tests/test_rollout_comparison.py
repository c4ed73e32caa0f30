"""Paired comparison of rollout rewards, which need not lie in [0, 1] (a service may reward 0–5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval_pipeline.metrics.model_comparison import compare_suite
from eval_pipeline.tasks.rollout import ROLLOUT


def reward_rows(model: str, rewards: list[float]) -> list[dict[str, object]]:
    return [{"sample_id": f"t{i}", "model": model, "sample_index": 0, "scorer": "reward", "score": r,
             "extracted": None, "request_hash": None, "error": None} for i, r in enumerate(rewards)]


def test_rewards_beyond_one_compare_with_the_paired_t_test() -> None:
    tuned, base = [5.0, 3.0, 4.5, 2.0, 5.0, 1.0], [4.0, 3.5, 2.0, 2.0, 3.0, 0.5]
    scores = pd.DataFrame(reward_rows("tuned", tuned) + reward_rows("base", base))
    with pytest.raises(ValueError, match="outside their range"):
        compare_suite("s", "base", scores)
    row = compare_suite("s", "base", scores, value_ranges=ROLLOUT.score_ranges(None)).iloc[0]  # type: ignore[arg-type]
    diffs = np.array(tuned) - np.array(base)
    reference = stats.ttest_rel(tuned, base)
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert row["test"] == "paired_t" and row["n"] == 6
    assert row["diff"] == pytest.approx(diffs.mean())
    assert row["p_value"] == pytest.approx(reference.pvalue)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
