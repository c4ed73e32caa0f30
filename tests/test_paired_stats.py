"""Paired comparison statistics and judge agreement, each checked against an independent reference."""

import math
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval_pipeline.metrics import (
    COMPARISON_COLUMNS,
    agreement,
    comparable_label,
    compare_models,
    holm,
    mcnemar_test,
    paired_difference,
)
from eval_pipeline.metrics.model_comparison import PREFERENCE, compare_suite, pairwise_rows


def discordant_arrays(b: int, c: int, both: int = 3, neither: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled paired 0/1 outcomes with b (1, 0) pairs, c (0, 1) pairs and some concordant ones."""
    pairs = [(1, 0)] * b + [(0, 1)] * c + [(1, 1)] * both + [(0, 0)] * neither
    order = np.random.default_rng(seed).permutation(len(pairs))
    table = np.array(pairs, dtype=int).reshape(-1, 2)[order]
    return table[:, 0], table[:, 1]


# --- McNemar ---------------------------------------------------------------------------------------------------

MCNEMAR_CASES = [(b, c) for b in range(0, 26, 1) for c in range(0, 26, 3)] + [
    (7, 7), (0, 1), (1, 0), (0, 40), (40, 0), (530, 470), (1000, 1000), (5000, 5200), (3, 300)]


def test_mcnemar_exact_p_against_scipy_binomtest() -> None:
    for b, c in MCNEMAR_CASES:
        result = mcnemar_test(*discordant_arrays(b, c))
        assert (result.b, result.c) == (b, c)
        if b + c == 0:
            assert result.p_value == 1.0 and math.isnan(result.statistic)
            continue
        expected = stats.binomtest(b, b + c, 0.5).pvalue
        assert result.p_value == pytest.approx(expected, rel=1e-10, abs=1e-300), (b, c)
        assert result.statistic == pytest.approx((abs(b - c) - 1) ** 2 / (b + c), rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(530, 470), (5000, 5200), (2600, 2400), (900, 1000)])
def test_mcnemar_statistic_chi2_tail_matches_exact_p_for_large_counts(b: int, c: int) -> None:
    # The continuity-corrected χ²₁ tail is the corrected normal approximation to the same binomial tail,
    # so for b + c in the thousands it agrees with the exact p to well under 1%.
    result = mcnemar_test(*discordant_arrays(b, c))
    assert stats.chi2.sf(result.statistic, df=1) == pytest.approx(result.p_value, rel=5e-3)


def test_mcnemar_textbook_case() -> None:
    # The Wikipedia example: 59 both positive, 6 (1, 0), 16 (0, 1), 80 both negative.
    model, baseline = discordant_arrays(6, 16, both=59, neither=80)
    result = mcnemar_test(model, baseline)
    assert (result.b, result.c) == (6, 16)
    assert result.statistic == pytest.approx(81 / 22)  # (|6 − 16| − 1)² / 22
    tail = sum(comb(22, i) for i in range(7))  # P[X ≤ 6] · 2²², X ~ Bin(22, ½)
    assert tail == 110056
    assert result.p_value == pytest.approx(2 * tail / 2**22, rel=1e-12)
    assert round(result.p_value, 4) == 0.0525


def test_mcnemar_no_discordant_pairs_and_input_types() -> None:
    for model, baseline in [([], []), ([1, 0, 1], [1, 0, 1])]:
        result = mcnemar_test(model, baseline)
        assert (result.b, result.c, result.p_value) == (0, 0, 1.0) and math.isnan(result.statistic)
    result = mcnemar_test(np.array([True, True, False]), [0.0, 1.0, 1.0])
    assert (result.b, result.c, result.p_value) == (1, 1, 1.0)
    assert result.statistic == pytest.approx(0.5)  # (0 − 1)² / 2


@pytest.mark.parametrize(("model", "baseline", "message"), [
    ([1, 0, 0.5], [1, 0, 1], "binary"),
    ([1, 0, 2], [1, 0, 1], "binary"),
    ([1, 0], [1, 0, 1], "length"),
    ([1, math.nan], [1, 0], "NaN"),
])
def test_mcnemar_rejects_bad_input(model: list[float], baseline: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mcnemar_test(model, baseline)


# --- compare_models ----------------------------------------------------------------------------------------------

NAN = math.nan
# metric "acc" is binary, "f1" continuous; s5 of base/acc is NaN (errored), m1 has no acc row for s5.
SCORES = {
    ("acc", "base"): {"s1": 1, "s2": 0, "s3": 1, "s4": 0, "s5": NAN},
    ("acc", "m1"): {"s1": 1, "s2": 1, "s3": 0, "s4": 1},
    ("acc", "m2"): {"s1": 0, "s2": 1, "s3": NAN, "s4": 0, "s5": 1},
    ("f1", "base"): {"s1": 0.5, "s2": 0.25, "s3": 1.0, "s4": 0.0},
    ("f1", "m1"): {"s1": 0.75, "s2": 0.25, "s3": NAN, "s4": 0.5, "s5": 0.9},
    ("f1", "m2"): {"s1": 1.0, "s2": 0.0, "s3": 1.0, "s4": 1.0},
}


def per_item_table(scores: dict[tuple[str, str], dict[str, float]]) -> pd.DataFrame:
    rows = [{"model": model, "metric": metric, "sample_id": sample_id, "score": float(score)}
            for (metric, model), items in scores.items() for sample_id, score in items.items()]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order must not matter


def mapped_exact_ci(b: int, c: int, n: int) -> tuple[float, float]:
    """Reference: scipy's exact (Clopper–Pearson) interval for π = b/(b + c), mapped to (b + c)/n · (2π − 1)."""
    ci = stats.binomtest(b, b + c).proportion_ci(0.95, method="exact")
    return (b + c) / n * (2 * ci.low - 1), (b + c) / n * (2 * ci.high - 1)


def test_compare_models_hand_built_table() -> None:
    table = compare_models(per_item_table(SCORES), "base", suite="demo")
    assert list(table.columns) == COMPARISON_COLUMNS
    assert list(zip(table["metric"], table["model"], strict=True)) == [
        ("acc", "m1"), ("acc", "m2"), ("f1", "m1"), ("f1", "m2")]
    assert (table["suite"] == "demo").all() and (table["baseline"] == "base").all()
    # By hand. acc m1: s1–s4 paired, 3/4 vs 2/4, b = {s2, s4}, c = {s3}: p = 2·P[Bin(3, ½) ≤ 1] = 1.
    # acc m2: s1, s2, s4 paired (s3 NaN for m2, s5 NaN for base), 1/3 vs 1/3, b = {s2}, c = {s1}.
    # f1 m1: s1, s2, s4 paired, (0.75 + 0.25 + 0.5)/3 vs (0.5 + 0.25 + 0)/3. f1 m2: s1–s4, 3/4 vs 1.75/4.
    f1_m1 = stats.ttest_rel([0.75, 0.25, 0.5], [0.5, 0.25, 0.0])
    f1_m2 = stats.ttest_rel([1.0, 0.0, 1.0, 1.0], [0.5, 0.25, 1.0, 0.0])
    expected = [
        (4, 0.75, 0.5, 0.25, "mcnemar", 2, 1, 1.0, mapped_exact_ci(2, 1, 4)),
        (3, 1 / 3, 1 / 3, 0.0, "mcnemar", 1, 1, 1.0, mapped_exact_ci(1, 1, 3)),
        (3, 0.5, 0.25, 0.25, "paired_t", None, None, f1_m1.pvalue, tuple(f1_m1.confidence_interval(0.95))),
        (4, 0.75, 0.4375, 0.3125, "paired_t", None, None, f1_m2.pvalue, tuple(f1_m2.confidence_interval(0.95))),
    ]
    for row, (n, model_value, baseline_value, diff, test, b, c, p_value, (low, high)) in zip(
            table.itertuples(), expected, strict=True):
        assert row.n == n
        assert (row.model_value, row.baseline_value, row.diff) == pytest.approx((model_value, baseline_value, diff))
        assert row.test == test
        assert row.p_value == pytest.approx(p_value, rel=1e-9)
        assert (row.ci_low, row.ci_high) == pytest.approx((max(low, -1.0), min(high, 1.0)), rel=1e-9)
        if test == "mcnemar":
            assert (row.b, row.c) == (b, c)
        else:
            assert pd.isna(row.b) and pd.isna(row.c)
        assert row.ci_low <= row.diff <= row.ci_high
    # f1 m2's t interval, [−0.57, 1.19], reaches past the possible +1 and is clipped there.
    assert f1_m2.confidence_interval(0.95).high > 1 and table.iloc[3].ci_high == 1.0
    # Holm within each model: m1 has p 1 (acc) and f1_m1.pvalue; m2 has 1 and f1_m2.pvalue.
    assert table.iloc[2].p_holm == pytest.approx(min(1.0, 2 * f1_m1.pvalue))
    assert table.iloc[0].p_holm == 1.0


def test_compare_models_matches_independent_pandas_pairing() -> None:
    per_item = per_item_table(SCORES)
    table = compare_models(per_item, "base").set_index(["metric", "model"])
    valid = per_item.dropna(subset=["score"])
    for (metric, model), row in table.iterrows():
        merged = valid[(valid.metric == metric) & (valid.model == model)].merge(
            valid[(valid.metric == metric) & (valid.model == "base")], on="sample_id", suffixes=("_m", "_b"))
        assert row["n"] == len(merged)
        assert row["model_value"] == pytest.approx(merged["score_m"].mean())
        assert row["baseline_value"] == pytest.approx(merged["score_b"].mean())
        if row["test"] == "paired_t":
            reference = stats.ttest_rel(merged["score_m"], merged["score_b"])
            assert row["p_value"] == pytest.approx(reference.pvalue)
        else:
            b = int(((merged["score_m"] == 1) & (merged["score_b"] == 0)).sum())
            c = int(((merged["score_m"] == 0) & (merged["score_b"] == 1)).sum())
            assert row["p_value"] == pytest.approx(stats.binomtest(b, b + c).pvalue)


def test_compare_models_test_switches_on_paired_scores_only() -> None:
    scores = {("acc", "base"): {"s1": 1, "s2": 0, "s3": NAN}, ("acc", "m1"): {"s1": 0, "s2": 1, "s3": 0.5}}
    row = compare_models(per_item_table(scores), "base").iloc[0]
    assert (row["test"], row["n"], row["b"], row["c"]) == ("mcnemar", 2, 1, 1)  # the 0.5 is unpaired
    scores[("acc", "base")]["s3"] = 1.0
    row = compare_models(per_item_table(scores), "base").iloc[0]
    assert (row["test"], row["n"]) == ("paired_t", 3) and pd.isna(row["b"])


def test_compare_models_no_pairs_and_duplicates() -> None:
    scores = {("acc", "base"): {"s1": 1}, ("acc", "m1"): {"s2": 1}, ("len", "m1"): {"s1": 3.0}}
    table = compare_models(per_item_table(scores), "base")
    assert list(table["metric"]) == ["acc", "len"] and (table["n"] == 0).all()
    assert table[["model_value", "baseline_value", "diff", "ci_low", "ci_high", "p_value", "p_holm"]].isna().all().all()

    duplicated = pd.DataFrame({"model": ["base", "base", "m1"], "metric": ["f1"] * 3,
                               "sample_id": ["s1", "s1", "s1"], "score": [0.2, 0.4, 0.5]})
    row = compare_models(duplicated, "base").iloc[0]
    assert (row["n"], row["baseline_value"], row["diff"]) == (1, pytest.approx(0.3), pytest.approx(0.2))


def test_compare_models_unknown_baseline_and_scores_outside_the_range() -> None:
    with pytest.raises(ValueError, match=r"'gpt-x'.*\['base', 'm1', 'm2'\]"):
        compare_models(per_item_table(SCORES), "gpt-x")
    scores = {("len", "base"): {"s1": 3.0, "s2": 1.0}, ("len", "m1"): {"s1": 2.0, "s2": 1.0}}
    with pytest.raises(ValueError, match=r"'len'.*outside their range \[0, 1\]"):
        compare_models(per_item_table(scores), "base")


# --- one procedure: interval and p-value never contradict --------------------------------------------------------

def test_reported_contradiction_is_gone() -> None:
    """8 items, b = 3, c = 0: diff +0.375 with McNemar p = 0.25 had the bootstrap CI [+0.125, +0.750]."""
    model, baseline = discordant_arrays(3, 0, both=2, neither=3)
    row = compare_models(pd.DataFrame({
        "model": ["tuned"] * 8 + ["base"] * 8, "metric": "contains", "sample_id": [f"s{i}" for i in range(8)] * 2,
        "score": np.r_[model, baseline].astype(float)}), "base").iloc[0]
    assert (row["diff"], row["p_value"], row["b"], row["c"]) == (0.375, 0.25, 3, 0)
    assert row["ci_low"] < 0 < row["ci_high"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(mapped_exact_ci(3, 0, 8))


@pytest.mark.parametrize("n", [8, 40, 200])
def test_binary_consistency_on_every_table_with_few_discordant_pairs(n: int) -> None:
    """Every b, c with b + c ≤ 25 and b + c ≤ n: the 95% CI excludes 0 exactly when p < 0.05, it lies inside
    [−(b + c)/n, (b + c)/n] ⊂ [−1, 1] (b + c > 0) and holds the difference; p and CI match scipy's exact test and
    interval."""
    excluded = 0
    for discordant in range(min(25, n) + 1):
        for b in range(discordant + 1):
            c = discordant - b
            model, baseline = discordant_arrays(b, c, both=(n - discordant) // 2,
                                                neither=n - discordant - (n - discordant) // 2)
            result = paired_difference(model, baseline)
            assert (result.test, result.n, result.b, result.c) == ("mcnemar", n, b, c)
            assert result.diff == pytest.approx((b - c) / n)
            assert (result.ci_low > 0 or result.ci_high < 0) == (result.p_value < 0.05), (b, c)
            assert -1 <= result.ci_low <= result.diff <= result.ci_high <= 1
            if discordant:
                assert -discordant / n - 1e-12 <= result.ci_low and result.ci_high <= discordant / n + 1e-12
                assert result.p_value == pytest.approx(stats.binomtest(b, discordant).pvalue, rel=1e-10)
                assert (result.ci_low, result.ci_high) == pytest.approx(mapped_exact_ci(b, c, n), abs=1e-12)
            else:  # no discordant pair: ±the exact upper bound of the discordant share
                assert result.p_value == 1.0 and result.ci_high == -result.ci_low == pytest.approx(
                    stats.binomtest(0, n).proportion_ci(method="exact").high)
            excluded += result.ci_low > 0 or result.ci_high < 0
    assert excluded > 0  # the check saw both outcomes


def continuous_cases(count: int, seed: int = 0):
    """Random paired bounded scores: beta-distributed, with ties, near the bounds, shifted by random amounts,
    some tuned to sit near the 0.05 boundary."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        n = int(rng.choice([2, 3, 5, 8, 20, 40, 200]))
        baseline = rng.beta(rng.uniform(0.3, 5), rng.uniform(0.3, 5), size=n)
        noise = rng.normal(0, rng.uniform(0.01, 0.3), size=n)
        if index % 3 == 0:  # aim the mean at the t threshold: p ≈ 0.05
            noise -= noise.mean()
            scale = noise.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
            noise += stats.t.ppf(0.975, n - 1) * scale * rng.uniform(0.98, 1.02) if n > 1 else 0.0
        model = np.clip(baseline + noise, 0, 1)
        if index % 5 == 0:
            model = np.round(model, 1)  # ties and values at the bounds
        yield model, baseline


def test_continuous_consistency_on_random_cases() -> None:
    near = 0
    for model, baseline in continuous_cases(3000):
        if np.isin(model, (0, 1)).all() and np.isin(baseline, (0, 1)).all():
            continue
        result = paired_difference(model, baseline)
        assert result.test == "paired_t"
        if math.isnan(result.p_value):
            assert result.n < 2
            continue
        assert (result.ci_low > 0 or result.ci_high < 0) == (result.p_value < 0.05)
        assert -1 <= result.ci_low <= result.diff <= result.ci_high <= 1
        reference = stats.ttest_rel(model, baseline)
        if np.ptp(model - baseline) > 0:
            assert result.p_value == pytest.approx(reference.pvalue, rel=1e-8)
            ci = reference.confidence_interval(0.95)
            assert (result.ci_low, result.ci_high) == pytest.approx((max(ci.low, -1), min(ci.high, 1)), rel=1e-8)
        near += 0.04 < result.p_value < 0.06
    assert near > 100  # many cases sat right at the boundary


def test_constant_differences() -> None:
    same = paired_difference([0.5, 0.25, 0.75], [0.5, 0.25, 0.75])
    assert (same.diff, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    shifted = paired_difference([0.75, 0.5, 1.0], [0.5, 0.25, 0.75])
    assert shifted.p_value == 0.0 and shifted.ci_low == shifted.ci_high == pytest.approx(0.25)


def test_pairwise_preference_uses_the_same_exact_procedure() -> None:
    winners = ["model", "model", "model", "tie", "tie", "baseline", "tie", "tie"]
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(8)], "model": "tuned", "baseline": "base",
                          "winner": winners, "consistent": True, "error": None})
    row = pairwise_rows("s", frame).set_index("metric").loc[PREFERENCE]
    assert (row["b"], row["c"], row["diff"]) == (3, 1, pytest.approx(2 / 8))
    assert row["p_value"] == pytest.approx(stats.binomtest(3, 4).pvalue)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(mapped_exact_ci(3, 1, 8))


# --- Holm -----------------------------------------------------------------------------------------------------

def closed_testing_holm(p_values: list[float]) -> list[float]:
    """Holm as the closed testing procedure over Bonferroni-tested intersections: the adjusted p of hypothesis i
    is the largest, over every subset S holding i, of min(1, |S| · min p over S)."""
    m = len(p_values)
    adjusted = []
    for i in range(m):
        worst = 0.0
        for mask in range(1, 2**m):
            if mask >> i & 1:
                members = [p_values[j] for j in range(m) if mask >> j & 1]
                worst = max(worst, min(1.0, len(members) * min(members)))
        adjusted.append(worst)
    return adjusted


def test_holm_hand_computed_and_against_closed_testing() -> None:
    # By hand: sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005, 3·0.01, 2·0.03, max(0.06, 1·0.04).
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = list(rng.uniform(0, 0.2, size=int(rng.integers(1, 8))) ** rng.uniform(0.5, 3))
        np.testing.assert_allclose(holm(p), closed_testing_holm(p), rtol=1e-12)
    with_nan = holm([0.02, math.nan, 0.01])
    assert math.isnan(with_nan[1]) and list(with_nan[[0, 2]]) == [0.02, 0.02]


def test_compare_suite_holm_is_per_model_over_all_its_rows() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for model, shift in (("base", 0.0), ("a", 0.15), ("b", 0.02)):
        for metric in ("f1", "rouge_l", "contains"):
            values = np.clip(rng.beta(2, 2, size=30) + shift, 0, 1)
            if metric == "contains":
                values = (values > 0.5).astype(float)
            rows += [{"sample_id": f"s{i}", "model": model, "sample_index": 0, "scorer": metric, "score": v,
                      "error": None} for i, v in enumerate(values)]
    table = compare_suite("s", "base", pd.DataFrame(rows))
    for _, family in table.groupby("model"):
        assert len(family) == 3
        np.testing.assert_allclose(family["p_holm"], closed_testing_holm(list(family["p_value"])), rtol=1e-12)
        assert (family["p_holm"] >= family["p_value"]).all()


# --- agreement ---------------------------------------------------------------------------------------------------

def reference_kappa(judge: list[str], human: list[str]) -> float:
    """Cohen's κ from a numpy confusion matrix."""
    labels = sorted(set(judge) | set(human))
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)))
    np.add.at(matrix, ([index[j] for j in judge], [index[h] for h in human]), 1)
    matrix /= matrix.sum()
    p_o = np.trace(matrix)
    p_e = matrix.sum(axis=1) @ matrix.sum(axis=0)
    return float((p_o - p_e) / (1 - p_e))


def random_labels(seed: int, n: int = 300) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = np.array(["pass", "fail", "partial", "refuse"])
    human = rng.choice(labels, size=n, p=[0.4, 0.3, 0.2, 0.1])
    judge = np.where(rng.random(n) < 0.7, human, rng.choice(labels, size=n))
    return judge.tolist(), human.tolist()


def test_agreement_classic_two_by_two() -> None:
    # 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no. p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5 → κ = 0.4.
    judge = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    human = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    result = agreement(judge, human)
    assert (result.n, result.accuracy) == (50, pytest.approx(0.7))
    assert result.kappa == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_agreement_against_numpy_confusion_matrix(seed: int) -> None:
    judge, human = random_labels(seed)
    result = agreement(judge, human)
    assert result.accuracy == pytest.approx(np.mean(np.array(judge) == np.array(human)))
    assert result.kappa == pytest.approx(reference_kappa(judge, human), abs=1e-12)


def test_agreement_against_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    for seed in range(5):
        judge, human = random_labels(seed + 10)
        assert agreement(judge, human).kappa == pytest.approx(metrics.cohen_kappa_score(judge, human), abs=1e-12)


def test_agreement_extremes() -> None:
    assert agreement(["a", "b", "c", "a"], ["a", "b", "c", "a"]).kappa == 1.0
    swapped = agreement(["a", "b", "a", "b"], ["b", "a", "b", "a"])  # p_o = 0, p_e = ½ → κ = −1
    assert (swapped.accuracy, swapped.kappa) == (0.0, pytest.approx(-1.0))
    single = agreement(["yes"] * 5, ["yes"] * 5)  # p_e = 1: κ is 0/0, taken as 1.0
    assert (single.n, single.accuracy, single.kappa) == (5, 1.0, 1.0)
    independent = agreement(["a", "a", "b", "b"], ["a", "b", "a", "b"])  # p_o = p_e = ½ → κ = 0
    assert independent.kappa == pytest.approx(0.0)
    empty = agreement([], [])
    assert empty.n == 0 and math.isnan(empty.accuracy) and math.isnan(empty.kappa)


def test_agreement_skips_missing_pairs() -> None:
    judge = ["yes", None, "no", math.nan, "yes", "no", pd.NA]
    human = ["yes", "no", None, "yes", "no", "no", "yes"]
    result = agreement(judge, human)
    assert result == agreement(["yes", "yes", "no"], ["yes", "no", "no"])
    assert (result.n, result.accuracy) == (3, pytest.approx(2 / 3))
    assert math.isnan(agreement([None, math.nan], ["a", "b"]).kappa)
    with pytest.raises(ValueError, match="length"):
        agreement(["a"], ["a", "b"])


def test_agreement_label_normalization() -> None:
    judge = [1, 1.0, "1", " 1.0 ", np.int64(2), 0.5, "yes", True, np.float32(3.0)]
    human = ["1", 1, 1.0, 1, 2.0, "0.50", "yes ", "True", "3"]
    assert agreement(judge, human).accuracy == 1.0
    assert agreement(["Yes", True, 1], ["yes", 1, "True"]).accuracy == 0.0  # case kept; bools are not 1/0
    assert [comparable_label(v) for v in (None, math.nan, pd.NA, np.nan, 2.50, "x ", 10**20)] == [
        None, None, None, None, "2.5", "x", str(10**20)]
