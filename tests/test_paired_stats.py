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
    mcnemar_test,
    paired_bootstrap,
)
from eval_pipeline.metrics import paired as paired_module


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


# --- paired bootstrap --------------------------------------------------------------------------------------------

def correlated_pair(n: int, effect: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    baseline = rng.normal(size=n)
    return baseline + effect + rng.normal(scale=0.8, size=n), baseline


def bootstrap_se(x: np.ndarray, y: np.ndarray) -> float:
    """The bootstrap distribution's SD of a mean, sd(ddof=0)/√n, by formula."""
    d = x - y
    return float(d.std() / math.sqrt(d.size))


def test_bootstrap_mean_diff_exact_and_ci_covers_truth_for_large_sample() -> None:
    model, baseline = correlated_pair(3000, 0.3, seed=1)
    result = paired_bootstrap(model, baseline, n_resamples=4000)
    assert result.n == 3000
    assert result.mean_diff == pytest.approx(model.mean() - baseline.mean(), abs=1e-12)
    assert result.ci_low < 0.3 < result.ci_high
    assert result.ci_low < result.mean_diff < result.ci_high
    # n = 3000 normal data: the percentile interval is ≈ mean ± 1.96 SE; 4000 resamples put ~3% noise on its width.
    se = bootstrap_se(model, baseline)
    assert result.ci_high - result.ci_low == pytest.approx(2 * 1.959964 * se, rel=0.06)


def test_bootstrap_ci_agrees_with_scipy_bootstrap() -> None:
    model, baseline = correlated_pair(200, 0.15, seed=2)
    resamples = 20_000
    ours = paired_bootstrap(model, baseline, n_resamples=resamples, seed=5)
    reference = stats.bootstrap(
        (model, baseline), lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis), paired=True,
        vectorized=True, method="percentile", n_resamples=resamples, confidence_level=0.95, random_state=11,
    ).confidence_interval
    # Same estimator, different random streams: each 2.5% / 97.5% quantile of B = 20,000 resampled means has
    # Monte Carlo SD ≈ √(0.025·0.975/B) / φ(1.96) · SE ≈ 0.019·SE (60 reruns of each measured 0.019–0.020·SE),
    # so two independent runs differ by ≈ 0.027·SE (SD). 0.12·SE is ≈ 4.4 of those SDs, and an interval off
    # by a wrong scale or centre (e.g. resampling the two arrays unpaired) misses by far more.
    tolerance = 0.12 * bootstrap_se(model, baseline)
    assert ours.ci_low == pytest.approx(reference.low, abs=tolerance)
    assert ours.ci_high == pytest.approx(reference.high, abs=tolerance)


def test_bootstrap_p_value() -> None:
    clear = paired_bootstrap(*correlated_pair(500, 0.4, seed=3), n_resamples=5000)
    assert clear.p_value < 0.001 and clear.ci_low > 0

    base = np.random.default_rng(4).normal(size=400)
    noise = np.random.default_rng(5).normal(size=400)
    noise -= noise.mean()  # a mean diff of exactly 0 (up to rounding)
    null = paired_bootstrap(base + noise, base, n_resamples=5000)
    assert null.p_value > 0.2 and null.ci_low < 0 < null.ci_high
    assert paired_bootstrap([1.0, 0.0, 2.0], [0.0, 1.0, 2.0]).p_value == 1.0  # observed diff exactly 0

    # Against the normal approximation 2·Φ(−|z|) at z ≈ 2.2: n = 1000 normal diffs make the bootstrap
    # distribution very nearly normal; the Monte Carlo SD of p at 20,000 resamples is ≈ 0.002.
    model, baseline = correlated_pair(1000, 0.0, seed=6)
    se = bootstrap_se(model, baseline)
    model = model - (model - baseline).mean() + 2.2 * se
    result = paired_bootstrap(model, baseline, n_resamples=20_000)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(2.2), abs=0.008)
    negative = paired_bootstrap(baseline, model, n_resamples=20_000)  # same indices: exactly mirrored
    assert (negative.mean_diff, negative.p_value) == (pytest.approx(-result.mean_diff), result.p_value)


def test_bootstrap_deterministic_per_seed() -> None:
    model, baseline = correlated_pair(100, 0.1, seed=7)
    first = paired_bootstrap(model, baseline, n_resamples=2000, seed=42)
    assert paired_bootstrap(model, baseline, n_resamples=2000, seed=42) == first
    other = paired_bootstrap(model, baseline, n_resamples=2000, seed=43)
    assert other.mean_diff == first.mean_diff and (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_bootstrap_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    model, baseline = correlated_pair(300, 0.2, seed=8)
    whole = paired_bootstrap(model, baseline, n_resamples=10_001)
    monkeypatch.setattr(paired_module, "_BLOCK_ELEMENTS", 3000)  # blocks of 10 resamples, the last one short
    blocked = paired_bootstrap(model, baseline, n_resamples=10_001)
    assert paired_bootstrap(model, baseline, n_resamples=10_001) == blocked
    # As in the scipy comparison above; at B = 10,001 two independent runs differ by ≈ 0.038·SE (SD).
    tolerance = 0.17 * bootstrap_se(model, baseline)
    assert blocked.ci_low == pytest.approx(whole.ci_low, abs=tolerance)
    assert blocked.ci_high == pytest.approx(whole.ci_high, abs=tolerance)


def test_bootstrap_small_n() -> None:
    empty = paired_bootstrap([], [])
    assert empty.n == 0
    assert all(math.isnan(v) for v in (empty.mean_diff, empty.ci_low, empty.ci_high, empty.p_value))
    single = paired_bootstrap([0.75], [0.25])
    assert (single.n, single.mean_diff) == (1, 0.5)
    assert all(math.isnan(v) for v in (single.ci_low, single.ci_high, single.p_value))
    constant = paired_bootstrap([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], n_resamples=100)
    assert (constant.mean_diff, constant.ci_low, constant.ci_high, constant.p_value) == (1.0, 1.0, 1.0, 0.0)


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], n_resamples=0)


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


def test_compare_models_hand_built_table() -> None:
    table = compare_models(per_item_table(SCORES), "base", suite="demo", n_resamples=2000, seed=3)
    assert list(table.columns) == COMPARISON_COLUMNS
    assert list(zip(table["metric"], table["model"], strict=True)) == [
        ("acc", "m1"), ("acc", "m2"), ("f1", "m1"), ("f1", "m2")]
    assert (table["suite"] == "demo").all() and (table["baseline"] == "base").all()
    # By hand. acc m1: s1–s4 paired, 3/4 vs 2/4, b = {s2, s4}, c = {s3}: p = 2·P[Bin(3, ½) ≤ 1] = 1.
    # acc m2: s1, s2, s4 paired (s3 NaN for m2, s5 NaN for base), 1/3 vs 1/3, b = {s2}, c = {s1}.
    # f1 m1: s1, s2, s4 paired, (0.75 + 0.25 + 0.5)/3 vs (0.5 + 0.25 + 0)/3. f1 m2: s1–s4, 3/4 vs 1.75/4.
    expected = [
        (4, 0.75, 0.5, 0.25, "mcnemar", 2, 1, 1.0),
        (3, 1 / 3, 1 / 3, 0.0, "mcnemar", 1, 1, 1.0),
        (3, 0.5, 0.25, 0.25, "paired_bootstrap", None, None, None),
        (4, 0.75, 0.4375, 0.3125, "paired_bootstrap", None, None, None),
    ]
    for row, (n, model_value, baseline_value, diff, test, b, c, p_value) in zip(
            table.itertuples(), expected, strict=True):
        assert row.n == n
        assert (row.model_value, row.baseline_value, row.diff) == pytest.approx((model_value, baseline_value, diff))
        assert row.test == test
        if test == "mcnemar":
            assert (row.b, row.c, row.p_value) == (b, c, p_value)
        else:
            assert pd.isna(row.b) and pd.isna(row.c) and 0 <= row.p_value <= 1
        assert row.ci_low <= row.diff <= row.ci_high


def test_compare_models_matches_independent_pandas_pairing() -> None:
    per_item = per_item_table(SCORES)
    table = compare_models(per_item, "base", n_resamples=500, seed=9).set_index(["metric", "model"])
    valid = per_item.dropna(subset=["score"])
    for (metric, model), row in table.iterrows():
        merged = valid[(valid.metric == metric) & (valid.model == model)].merge(
            valid[(valid.metric == metric) & (valid.model == "base")], on="sample_id", suffixes=("_m", "_b"))
        assert row["n"] == len(merged)
        assert row["model_value"] == pytest.approx(merged["score_m"].mean())
        assert row["baseline_value"] == pytest.approx(merged["score_b"].mean())
        merged = merged.sort_values("sample_id")  # compare_models pairs in sample_id order
        boot = paired_bootstrap(merged["score_m"], merged["score_b"], n_resamples=500, seed=9)
        assert (row["diff"], row["ci_low"], row["ci_high"]) == pytest.approx((boot.mean_diff, boot.ci_low,
                                                                                boot.ci_high))
        if row["test"] == "paired_bootstrap":
            assert row["p_value"] == boot.p_value


def test_compare_models_test_switches_on_paired_scores_only() -> None:
    scores = {("acc", "base"): {"s1": 1, "s2": 0, "s3": NAN}, ("acc", "m1"): {"s1": 0, "s2": 1, "s3": 0.5}}
    row = compare_models(per_item_table(scores), "base", n_resamples=200).iloc[0]
    assert (row["test"], row["n"], row["b"], row["c"]) == ("mcnemar", 2, 1, 1)  # the 0.5 is unpaired
    scores[("acc", "base")]["s3"] = 1.0
    row = compare_models(per_item_table(scores), "base", n_resamples=200).iloc[0]
    assert (row["test"], row["n"]) == ("paired_bootstrap", 3) and pd.isna(row["b"])


def test_compare_models_no_pairs_and_duplicates() -> None:
    scores = {("acc", "base"): {"s1": 1}, ("acc", "m1"): {"s2": 1}, ("len", "m1"): {"s1": 3.0}}
    table = compare_models(per_item_table(scores), "base", n_resamples=200)
    assert list(table["metric"]) == ["acc", "len"] and (table["n"] == 0).all()
    assert table[["model_value", "baseline_value", "diff", "ci_low", "ci_high", "p_value"]].isna().all().all()

    duplicated = pd.DataFrame({"model": ["base", "base", "m1"], "metric": ["f1"] * 3,
                               "sample_id": ["s1", "s1", "s1"], "score": [0.2, 0.4, 0.5]})
    row = compare_models(duplicated, "base", n_resamples=200).iloc[0]
    assert (row["n"], row["baseline_value"], row["diff"]) == (1, pytest.approx(0.3), pytest.approx(0.2))


def test_compare_models_unknown_baseline() -> None:
    with pytest.raises(ValueError, match=r"'gpt-x'.*\['base', 'm1', 'm2'\]"):
        compare_models(per_item_table(SCORES), "gpt-x")


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
