import json
import math
from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval_pipeline.metrics import aggregate_scores, mean_estimate, pass_at_k, pass_hat_k


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


def exact_pass_hat_k(n: int, c: int, k: int) -> Fraction:
    return Fraction(comb(c, k), comb(n, k))


CASES = [(n, c, k) for n in range(1, 13) for c in range(n + 1) for k in range(1, n + 1)]


@pytest.mark.parametrize(("n", "c", "k"), [*CASES[::7], (200, 13, 10), (100, 0, 1), (100, 100, 100)])
def test_pass_at_k_and_pass_hat_k_against_exact_combinatorics(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)), abs=1e-12)
    assert pass_hat_k(n, c, k) == pytest.approx(float(exact_pass_hat_k(n, c, k)), abs=1e-12)


def test_pass_k_arrays_and_nan_where_n_below_k() -> None:
    n, c = np.array([5, 5, 2, 10]), np.array([0, 3, 1, 10])
    at, hat = pass_at_k(n, c, 3), pass_hat_k(n, c, 3)
    assert isinstance(at, np.ndarray) and at.shape == (4,)
    expected_at = [float(exact_pass_at_k(5, 0, 3)), float(exact_pass_at_k(5, 3, 3)), math.nan, 1.0]
    np.testing.assert_allclose(at, expected_at, equal_nan=True)
    np.testing.assert_allclose(hat, [0.0, float(exact_pass_hat_k(5, 3, 3)), math.nan, 1.0], equal_nan=True)
    assert math.isnan(pass_at_k(2, 1, 3)) and math.isnan(pass_hat_k(2, 1, 3))
    assert pass_at_k(4, 2, 1) == pass_hat_k(4, 2, 1) == 0.5  # k = 1: both are c/n


def test_pass_k_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        pass_at_k(3, 1, 0)
    with pytest.raises(ValueError, match="c <= n"):
        pass_hat_k(3, 4, 1)


def test_mean_estimate_against_scipy_t_interval() -> None:
    values = np.array([1, 0, 1, 1, 0, 1, 0.5, 0.25, 1, 1], dtype=float)
    estimate = mean_estimate(values)
    interval = stats.ttest_1samp(values, 0).confidence_interval(0.95)
    assert estimate.value == pytest.approx(values.mean())
    assert estimate.stderr == pytest.approx(stats.sem(values))
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx((interval.low, interval.high))
    assert estimate.n == 10


def test_mean_estimate_small_n() -> None:
    assert math.isnan(mean_estimate(np.array([])).value)
    one = mean_estimate(np.array([0.5]))
    assert one.value == 0.5 and math.isnan(one.stderr) and one.n == 1


def test_aggregate_against_an_independent_groupby() -> None:
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(30)]
    categories = rng.choice(["x", "y", "z"], size=30)
    samples = pd.DataFrame({"sample_id": ids, "category": categories,
                            "metadata": [json.dumps({"level": int(i % 2)}) for i in range(30)]})
    rows = []
    for sample_id in ids:
        for index in range(3):
            failed = rng.random() < 0.1
            rows.append({"sample_id": sample_id, "model": "m", "sample_index": index, "scorer": "acc",
                         "score": None if failed else float(rng.random() < 0.6),
                         "error": "boom" if failed else None})
    scores = pd.DataFrame(rows)
    metrics = aggregate_scores("suite", samples, scores, ["category", "level"])

    ok = scores[scores["error"].isna()]
    per_item = ok.groupby("sample_id")["score"].mean()
    overall = metrics[metrics["breakdown_key"].isna()].iloc[0]
    assert overall["value"] == pytest.approx(per_item.mean())
    assert overall["stderr"] == pytest.approx(per_item.std(ddof=1) / math.sqrt(len(per_item)))
    assert overall["n"] == len(per_item) and overall["errors"] == scores["error"].notna().sum()

    joined = per_item.to_frame().join(samples.set_index("sample_id"))
    for category, group in joined.groupby("category"):
        row = metrics[(metrics["breakdown_key"] == "category") & (metrics["breakdown_value"] == category)].iloc[0]
        assert row["value"] == pytest.approx(group["score"].mean()) and row["n"] == len(group)
        errors = scores[scores["error"].notna()].merge(samples, on="sample_id")
        assert row["errors"] == (errors["category"] == category).sum()
    level_rows = metrics[metrics["breakdown_key"] == "level"]
    assert sorted(level_rows["breakdown_value"]) == ["0", "1"]
    assert level_rows["n"].sum() == len(per_item)


def test_an_item_whose_every_sample_failed_is_not_counted_as_zero() -> None:
    samples = pd.DataFrame({"sample_id": ["a", "b"], "metadata": ["{}", "{}"]})
    scores = pd.DataFrame({"sample_id": ["a", "b"], "model": "m", "sample_index": 0, "scorer": "acc",
                           "score": [1.0, None], "error": [None, "timeout"]})
    row = aggregate_scores("s", samples, scores).iloc[0]
    assert row["value"] == 1.0 and row["n"] == 1 and row["errors"] == 1


def test_a_sample_without_the_breakdown_value_is_left_out_of_its_breakdown_rows() -> None:
    """A metadata breakdown some samples lack: those samples count overall only (no NaN group, no crash sorting
    NaN among the values' strings)."""
    from eval_pipeline.metrics import breakdown_column

    samples = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "category": ["x", None, "y", "x"],
                            "metadata": [json.dumps({"level": "easy"}), "{}", json.dumps({"level": "hard"}),
                                         json.dumps({"level": "easy"})]})
    assert breakdown_column(samples, "level").tolist() == ["easy", None, "hard", "easy"]
    assert breakdown_column(samples, "category").tolist() == ["x", None, "y", "x"]
    scores = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "model": "m", "sample_index": 0, "scorer": "acc",
                           "score": [1.0, 0.0, 0.0, 0.0], "error": None})
    metrics = aggregate_scores("s", samples, scores, ["level", "category"])
    by_group = {(r.breakdown_key, r.breakdown_value): (r.value, r.n) for r in metrics.itertuples()
                if isinstance(r.breakdown_key, str)}
    assert by_group == {("level", "easy"): (0.5, 2), ("level", "hard"): (0.0, 1),
                        ("category", "x"): (0.5, 2), ("category", "y"): (0.0, 1)}
    overall = metrics[metrics["breakdown_key"].isna()].iloc[0]
    assert overall["value"] == 0.25 and overall["n"] == 4
