"""Intervals of a mean that stay inside the metric's range, with their coverage by simulation and against
independent references (scipy's exact binomial interval, beta and t quantiles)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval_pipeline.metrics import SCORE_RANGE, UNBOUNDED, UNIT, ValueRange, aggregate_scores, mean_estimate
from eval_pipeline.metrics.intervals import INTERVAL_METHODS, clopper_pearson, korn_graubard
from eval_pipeline.metrics.passk_table import pass_k_rows

PS = (0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99)
NS = (5, 10, 40, 200)
RUNS = 2000


def binary_coverage(seed: int = 0) -> dict[tuple[float, int], float]:
    """Per (p, n): the share of RUNS simulated 0/1 samples whose mean_estimate interval holds p. Every interval
    comes from mean_estimate itself (one call per possible count, looked up per run), and each must lie in [0, 1]."""
    rng = np.random.default_rng(seed)
    coverage = {}
    for n in NS:
        bounds = np.array([(e.ci_low, e.ci_high) for e in (
            mean_estimate(np.r_[np.ones(x), np.zeros(n - x)], value_range=SCORE_RANGE) for x in range(n + 1))])
        assert (bounds >= 0).all() and (bounds <= 1).all() and (bounds[:, 0] < bounds[:, 1]).all()
        for p in PS:
            counts = rng.binomial(n, p, size=RUNS)
            low, high = bounds[counts, 0], bounds[counts, 1]
            coverage[(p, n)] = float(np.mean((low <= p) & (p <= high)))
    return coverage


def test_binary_interval_coverage_by_simulation() -> None:
    coverage = binary_coverage()
    worst = min(coverage, key=coverage.get)
    assert np.mean(list(coverage.values())) >= 0.94
    # Clopper–Pearson's coverage is ≥ 0.95 in every cell (exact worst: 0.958 at p = 0.2 or 0.8, n = 200); 2,000
    # runs add a standard error of about 0.005.
    assert coverage[worst] >= 0.94, (worst, coverage[worst])


def test_binary_coverage_matches_the_exact_binomial_coverage() -> None:
    """The simulated coverage agrees with the exact coverage Σ P[X = x] over the x whose interval holds p."""
    simulated = binary_coverage(seed=1)
    for (p, n), share in simulated.items():
        x = np.arange(n + 1)
        low, high = clopper_pearson(x, n)
        exact = stats.binom.pmf(x, n, p)[(low <= p) & (p <= high)].sum()
        assert exact >= 0.95
        assert share == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / RUNS) + 1e-3), (p, n)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 17, 40, 200])
def test_clopper_pearson_against_scipy_exact(n: int) -> None:
    for x in range(n + 1):
        reference = stats.binomtest(x, n).proportion_ci(0.95, method="exact")
        estimate = mean_estimate(np.r_[np.ones(x), np.zeros(n - x)], value_range=UNIT)
        assert (estimate.ci_low, estimate.ci_high) == pytest.approx((reference.low, reference.high), abs=1e-12)
        assert estimate.method == "clopper_pearson"


def test_zero_of_forty_is_not_certain() -> None:
    estimate = mean_estimate(np.zeros(40), value_range=SCORE_RANGE)
    assert (estimate.value, estimate.stderr) == (0.0, 0.0)  # the plug-in standard error is 0 ...
    assert estimate.ci_low == 0.0 and estimate.ci_high == pytest.approx(1 - 0.025 ** (1 / 40))  # ... the CI is not
    assert estimate.ci_high == pytest.approx(0.0881, abs=1e-4)


def test_the_reported_t_interval_outside_zero_one_is_gone() -> None:
    """3 of 5 gave the t interval [−0.080, 1.280]; the exact interval is [0.147, 0.947]."""
    values = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    old = stats.ttest_1samp(values, 0).confidence_interval(0.95)
    assert (round(old.low, 3), round(old.high, 3)) == (-0.08, 1.28)
    estimate = mean_estimate(values, value_range=SCORE_RANGE)
    reference = stats.binomtest(3, 5).proportion_ci(method="exact")
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx((reference.low, reference.high))
    assert 0 <= estimate.ci_low < estimate.ci_high <= 1


def reference_korn_graubard(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """From the definition with scipy.stats: Clopper–Pearson at n* = n/φ̃ · (z/t)², φ̃ = (n·s²/(m(1−m)) + 2)/(n + 2)."""
    n, m, s2 = values.size, values.mean(), values.var(ddof=1)
    phi = (n * s2 / (m * (1 - m)) + 2) / (n + 2)
    alpha = 1 - confidence
    n_eff = n / phi * (stats.norm.ppf(1 - alpha / 2) / stats.t.ppf(1 - alpha / 2, n - 1)) ** 2
    x = m * n_eff
    return stats.beta.ppf(alpha / 2, x, n_eff - x + 1), stats.beta.ppf(1 - alpha / 2, x + 1, n_eff - x)


def test_bounded_continuous_interval_against_its_definition() -> None:
    rng = np.random.default_rng(3)
    for n in (2, 5, 40, 300):
        values = rng.beta(2, 5, size=n)
        estimate = mean_estimate(values, value_range=UNIT)
        assert estimate.method == "korn_graubard"
        assert (estimate.ci_low, estimate.ci_high) == pytest.approx(reference_korn_graubard(values), rel=1e-9)
    # A range other than [0, 1]: the values are rescaled, the interval scaled back.
    values = rng.beta(2, 2, size=30)
    scaled = mean_estimate(1 + 4 * values, value_range=ValueRange(1.0, 5.0))
    low, high = reference_korn_graubard(values)
    assert (scaled.ci_low, scaled.ci_high) == pytest.approx((1 + 4 * low, 1 + 4 * high), rel=1e-9)


def test_constant_fractional_values_do_not_claim_certainty() -> None:
    estimate = mean_estimate(np.full(40, 0.5), value_range=UNIT)
    assert estimate.stderr == 0.0 and estimate.ci_low < 0.47 and estimate.ci_high > 0.53


BETA_CASES = [(2.0, 5.0), (0.5, 0.5), (5.0, 1.0), (1.0, 9.0), (0.3, 1.2)]


@pytest.mark.parametrize("n", [10, 40, 200])
def test_bounded_continuous_coverage_on_beta_cases(n: int) -> None:
    """Beta-distributed scores (skewed, U-shaped, near a bound): coverage at least about 0.95, all inside [0, 1].
    Vectorized over the runs through the same ``korn_graubard`` that mean_estimate uses (checked on a few rows)."""
    rng = np.random.default_rng(n)
    for a, b in BETA_CASES:
        draws = rng.beta(a, b, size=(RUNS, n))
        low, high = korn_graubard(draws.mean(axis=1), draws.var(axis=1, ddof=1), n)
        assert (low >= 0).all() and (high <= 1).all() and (low <= draws.mean(axis=1)).all()
        for row in range(3):
            estimate = mean_estimate(draws[row], value_range=UNIT)
            assert (estimate.ci_low, estimate.ci_high) == pytest.approx((low[row], high[row]), rel=1e-12)
        mean = a / (a + b)
        coverage = float(np.mean((low <= mean) & (mean <= high)))
        assert coverage >= 0.935, (a, b, n, coverage)


def test_mixed_counts_over_samples_keep_coverage() -> None:
    """Per-item means over 3 samples of a 0/1 scorer (values 0, ⅓, ⅔, 1) at p = 0.1 and 0.7."""
    rng = np.random.default_rng(5)
    for p in (0.1, 0.7):
        for n in (10, 40):
            draws = rng.binomial(3, p, size=(RUNS, n)) / 3
            low, high = korn_graubard(draws.mean(axis=1), draws.var(axis=1, ddof=1), n)
            binary = np.isin(draws, (0.0, 1.0)).all(axis=1)  # those go to Clopper–Pearson in mean_estimate
            low[binary], high[binary] = clopper_pearson(draws[binary].sum(axis=1), n)
            assert float(np.mean((low <= p) & (p <= high))) >= 0.935


def test_method_follows_the_data_and_the_range() -> None:
    assert [method.name for method in INTERVAL_METHODS] == ["clopper_pearson", "korn_graubard", "t"]
    assert mean_estimate(np.array([0.0, 1.0, 1.0]), value_range=UNIT).method == "clopper_pearson"
    assert mean_estimate(np.array([0.0, 0.5, 1.0]), value_range=UNIT).method == "korn_graubard"
    unbounded = mean_estimate(np.array([3.0, 5.5, 9.0]), value_range=UNBOUNDED)
    reference = stats.ttest_1samp([3.0, 5.5, 9.0], 0).confidence_interval(0.95)
    assert unbounded.method == "t" and (unbounded.ci_low, unbounded.ci_high) == pytest.approx(reference)
    assert mean_estimate(np.array([0.0, 1.0])).method == "t"  # no range given: nothing to respect
    one = mean_estimate(np.array([0.5]), value_range=UNIT)
    assert math.isnan(one.ci_low) and one.method is None
    with pytest.raises(ValueError, match=r"outside their range \[0, 1\]: 1.5"):
        mean_estimate(np.array([0.5, 1.5]), value_range=UNIT)


def test_aggregate_scores_names_the_method_and_stays_in_range() -> None:
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(5)], "category": ["general"] * 5,
                            "metadata": ["{}"] * 5})
    rows = [{"sample_id": f"s{i}", "model": "m", "sample_index": 0, "scorer": "contains",
             "score": float(i < 3), "error": None} for i in range(5)]
    rows += [{"sample_id": f"s{i}", "model": "m", "sample_index": 0, "scorer": "f1", "score": 0.2 * i,
              "error": None} for i in range(5)]
    table = aggregate_scores("s", samples, pd.DataFrame(rows), ["category"])
    assert (table["ci_low"] >= 0).all() and (table["ci_high"] <= 1).all()
    contains = table[(table["metric"] == "contains") & (table["breakdown_key"] == "category")].iloc[0]
    reference = stats.binomtest(3, 5).proportion_ci(method="exact")
    assert (contains["ci_low"], contains["ci_high"]) == pytest.approx((reference.low, reference.high))
    assert contains["ci_method"] == "clopper_pearson"
    assert set(table.loc[table["metric"] == "f1", "ci_method"]) == {"korn_graubard"}
    bad = pd.DataFrame([{**rows[0], "score": 2.0}, rows[1]])
    with pytest.raises(ValueError, match=r"'contains' of model 'm'.*outside"):
        aggregate_scores("s", samples, bad)


def test_pass_k_rows_intervals_in_range() -> None:
    rows = [{"sample_id": f"t{t}", "model": "m", "sample_index": i, "scorer": "code_exec",
             "score": float((t + i) % 4 == 0), "error": None} for t in range(12) for i in range(4)]
    table = pass_k_rows(pd.DataFrame(rows), [1, 2])
    assert (table["ci_low"] >= 0).all() and (table["ci_high"] <= 1).all()
    assert set(table["ci_method"]) <= {"clopper_pearson", "korn_graubard"}
    assert table["ci_method"].notna().all()
