"""Agent metrics from the rollouts table: pass@k/pass^k against exact combinatorics and against a scripted
environment with known success probabilities, task-level bootstrap intervals, errors by source, breakdowns."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.metrics.ranges import UNIT, ValueRange
from eval_pipeline.metrics.rollout_metrics import rollout_metrics
from eval_pipeline.metrics.task_bootstrap import CI_METHOD, task_bootstrap


def rollout(task: str, member: int, *, success: bool | None, reward: float | None = None, model: str = "m",
            error: str | None = None, source: str | None = None) -> dict[str, object]:
    if reward is None and success is not None:
        reward = 1.0 if success else 0.0
    return {"sample_id": task, "model": model, "sample_index": member, "rollout_id": f"{model}/{task}/{member}",
            "environment": "python:scripted", "turns": "[]", "messages": "[]", "num_turns": 1, "reward": reward,
            "success": success, "termination": "error" if error else "done", "error": error, "error_source": source}


def table(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def row_of(metrics: pd.DataFrame, metric: str, key: str | None = None, value: str | None = None,
           model: str = "m") -> pd.Series:
    selected = metrics[(metrics["metric"] == metric) & (metrics["model"] == model)]
    selected = selected[selected["breakdown_key"].isna()] if key is None else selected[
        (selected["breakdown_key"] == key) & (selected["breakdown_value"] == value)]
    assert len(selected) == 1, (metric, key, value)
    return selected.iloc[0]


def scripted_environment(probabilities: np.ndarray, group: int, rng: np.random.Generator) -> pd.DataFrame:
    """Task t succeeds in each rollout independently with probability p_t (reward 1 on success, else 0)."""
    outcomes = rng.random((probabilities.size, group)) < probabilities[:, None]
    return table([rollout(f"t{t}", j, success=bool(outcomes[t, j]))
                  for t in range(probabilities.size) for j in range(group)])


# (a) the estimator over groups equals exact combinatorics ------------------------------------------------------

def test_pass_k_equals_the_mean_over_every_k_subset_of_each_group() -> None:
    rng = np.random.default_rng(7)
    rows, groups = [], {}
    for t in range(12):
        size = int(rng.integers(1, 9))                      # group sizes 1 .. 8
        hits = [bool(x) for x in rng.random(size) < rng.random()]
        groups[f"t{t}"] = hits
        rows += [rollout(f"t{t}", j, success=hit) for j, hit in enumerate(hits)]
        rows.append(rollout(f"t{t}", size, success=None, error="env down", source="environment"))  # never drawn
    metrics = rollout_metrics(table(rows), pass_k_values=(1, 2, 3, 5, 8), resamples=200)
    for k in (1, 2, 3, 5, 8):
        eligible = [hits for hits in groups.values() if len(hits) >= k]
        at = np.mean([np.mean([any(s) for s in itertools.combinations(h, k)]) for h in eligible])
        hat = np.mean([np.mean([all(s) for s in itertools.combinations(h, k)]) for h in eligible])
        assert row_of(metrics, f"pass@{k}")["value"] == pytest.approx(at, abs=1e-12)
        assert row_of(metrics, f"pass^{k}")["value"] == pytest.approx(hat, abs=1e-12)
        assert row_of(metrics, f"pass@{k}")["n"] == len(eligible)
        assert row_of(metrics, f"pass@{k}")["k"] == k
        left_out = metrics[metrics["metric"] == f"tasks_left_out@{k}"]
        if len(eligible) < len(groups):
            assert row_of(metrics, f"tasks_left_out@{k}")["value"] == len(groups) - len(eligible)
        else:  # no task left out: no row saying 0
            assert left_out.empty
    assert row_of(metrics, "pass@1")["value"] == pytest.approx(row_of(metrics, "success_rate")["value"])
    assert list(metrics.columns) == METRICS.names


# (b) the must-show: a scripted environment with known success probabilities ---------------------------------------

KS = (1, 2, 4, 8)


def test_scripted_environment_analytic_values_lie_inside_the_task_bootstrap_intervals() -> None:
    rng = np.random.default_rng(2026)
    p = rng.beta(2.0, 2.0, size=200)
    metrics = rollout_metrics(scripted_environment(p, 8, rng), pass_k_values=KS, seed=1)
    analytic = {"success_rate": p.mean(), "mean_reward": p.mean()}
    for k in KS:
        analytic[f"pass@{k}"] = np.mean(1 - (1 - p) ** k)
        analytic[f"pass^{k}"] = np.mean(p ** k)
    for metric, truth in analytic.items():
        row = row_of(metrics, metric)
        assert row["ci_low"] <= truth <= row["ci_high"], (metric, truth, row["ci_low"], row["ci_high"])
        assert 0.0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1.0
        assert row["ci_high"] - row["ci_low"] < 0.2
        assert row["ci_method"] == CI_METHOD and row["n"] == 200 and row["errors"] == 0


def population_values(a: float, b: float) -> dict[str, float]:
    """pass@k and pass^k of a task population whose p_t ~ Beta(a, b): E[1 − (1−p)^k] and E[p^k], in closed form."""
    values = {"success_rate": a / (a + b)}
    for k in KS:
        values[f"pass@{k}"] = 1 - math.exp(special.betaln(a, b + k) - special.betaln(a, b))
        values[f"pass^{k}"] = math.exp(special.betaln(a + k, b) - special.betaln(a, b))
    return values


def coverage(seeds: int, tasks: int, a: float = 2.0, b: float = 3.0) -> dict[str, float]:
    truth = population_values(a, b)
    hits = dict.fromkeys(truth, 0)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        metrics = rollout_metrics(scripted_environment(rng.beta(a, b, size=tasks), 8, rng), pass_k_values=KS,
                                  resamples=1000, seed=seed)
        for metric, value in truth.items():
            row = row_of(metrics, metric)
            hits[metric] += row["ci_low"] <= value <= row["ci_high"]
    return {metric: count / seeds for metric, count in hits.items()}


def test_population_values_match_monte_carlo() -> None:
    p = np.random.default_rng(0).beta(2.0, 3.0, size=2_000_000)
    for metric, value in population_values(2.0, 3.0).items():
        k = int(metric.split("@")[-1].split("^")[-1]) if metric != "success_rate" else 1
        simulated = np.mean(1 - (1 - p) ** k) if "@" in metric or metric == "success_rate" else np.mean(p ** k)
        assert simulated == pytest.approx(value, abs=2e-3)


@pytest.mark.slow
def test_task_bootstrap_coverage_over_200_seeds_is_near_95_percent() -> None:
    """200 seeds × 200 tasks × group 8: each share has a binomial SE of about 0.015 at 0.95; the rarest metric
    (pass^8, ~1% of tasks) undercovers a little, as any percentile interval of a rare event does."""
    shares = coverage(200, 200)
    assert 0.91 <= np.mean(list(shares.values())) <= 0.98, shares
    assert all(0.86 <= share <= 0.99 for share in shares.values()), shares


# task_bootstrap itself ---------------------------------------------------------------------------------------------

def test_task_bootstrap_matches_scipy_percentile_bootstrap() -> None:
    values = np.random.default_rng(3).beta(0.7, 0.9, size=60)
    ours = task_bootstrap(values, value_range=UNIT, resamples=40_000, rng=5)
    theirs = stats.bootstrap((values,), np.mean, n_resamples=40_000, method="percentile",
                             random_state=np.random.default_rng(11)).confidence_interval
    assert ours.value == pytest.approx(values.mean())
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.006)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.006)
    assert ours.stderr == pytest.approx(values.std(ddof=1) / math.sqrt(60), rel=0.05)
    assert task_bootstrap(values, value_range=UNIT, resamples=500, rng=5) == \
        task_bootstrap(values, value_range=UNIT, resamples=500, rng=5)


def test_task_bootstrap_stays_inside_the_range_and_handles_degenerate_cases() -> None:
    ones = task_bootstrap(np.ones(30), value_range=UNIT)
    assert (ones.value, ones.ci_low, ones.ci_high) == (1.0, 1.0, 1.0)
    single = task_bootstrap(np.array([0.4]), value_range=UNIT)
    assert single.value == 0.4 and math.isnan(single.ci_low) and math.isnan(single.ci_high) and single.method is None
    empty = task_bootstrap(np.array([]), value_range=UNIT)
    assert empty.n == 0 and math.isnan(empty.value) and math.isnan(empty.ci_low)
    skewed = task_bootstrap(np.r_[np.ones(9), [0.0]], value_range=ValueRange(0.0, 1.0), resamples=4000)
    assert skewed.ci_high == 1.0 and 0.0 <= skewed.ci_low < 0.9
    with pytest.raises(ValueError, match="outside"):
        task_bootstrap(np.array([0.5, 1.5]), value_range=UNIT)
    with pytest.raises(ValueError, match="NaN"):
        task_bootstrap(np.array([0.5, np.nan]), value_range=UNIT)


def test_mean_reward_interval_stays_inside_the_observed_reward_bounds() -> None:
    rows = [rollout(f"t{t}", j, success=t % 2 == 0, reward=(-2.0 if t == 0 else 3.0)) for t in range(8)
            for j in range(2)]
    row = row_of(rollout_metrics(table(rows), resamples=2000), "mean_reward")
    assert row["value"] == pytest.approx((-2.0 + 7 * 3.0) / 8)
    assert -2.0 <= row["ci_low"] <= row["value"] <= row["ci_high"] == 3.0


# (c) errors excluded from every mean and counted by source --------------------------------------------------------

def test_errored_rollouts_are_excluded_and_counted_by_source() -> None:
    rows = [rollout("a", 0, success=True), rollout("a", 1, success=False, reward=0.25),
            rollout("a", 2, success=False, reward=0.0, error="simulated user failed", source="user"),
            rollout("a", 3, success=None, error="env crashed", source="environment"),
            rollout("b", 0, success=True, reward=0.5), rollout("b", 1, success=True, reward=0.75),
            rollout("b", 2, success=None, error="time budget spent", source="budget"),
            rollout("b", 3, success=None, error="model call failed", source="agent"),
            rollout("c", 0, success=None, error="???"),           # every rollout errored: no task value
            ]
    metrics = rollout_metrics(table(rows), pass_k_values=(1, 2, 3))
    success = row_of(metrics, "success_rate")
    assert success["value"] == pytest.approx((1 / 2 + 2 / 2) / 2) and success["n"] == 2 and success["errors"] == 5
    assert row_of(metrics, "mean_reward")["value"] == pytest.approx(((1.0 + 0.25) / 2 + (0.5 + 0.75) / 2) / 2)
    assert row_of(metrics, "pass^2")["value"] == pytest.approx((0.0 + 1.0) / 2)
    assert row_of(metrics, "pass@3")["n"] == 0 and math.isnan(row_of(metrics, "pass@3")["value"])
    assert row_of(metrics, "tasks_left_out@3")["value"] == 3 and row_of(metrics, "tasks_left_out@1")["value"] == 1
    counts = {source: row_of(metrics, f"errors.{source}")["value"]
              for source in ("agent", "environment", "user", "budget", "unknown")}
    assert counts == {"agent": 1, "environment": 1, "user": 1, "budget": 1, "unknown": 1}
    assert set(metrics["errors"]) == {5}
    assert row_of(metrics, "errors.user")["n"] == len(rows)


def test_a_rollout_without_error_or_reward_is_refused() -> None:
    with pytest.raises(ValueError, match="m/a/0"):
        rollout_metrics(table([rollout("a", 0, success=None)]))


# (d) breakdowns ----------------------------------------------------------------------------------------------------

def test_breakdown_rows_are_the_metrics_of_each_group_of_tasks() -> None:
    samples = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d"], "category": ["x", "x", "y", "y"],
        "metadata": [json.dumps({"level": "easy"}), json.dumps({"level": "hard"}), json.dumps({"level": "easy"}),
                     "{}"]})
    outcomes = {"a": [1, 1, 0], "b": [0, 0, 1], "c": [1, 1, 1], "d": [0, 1, 0]}
    rows = [rollout(task, j, success=bool(hit)) for task, hits in outcomes.items() for j, hit in enumerate(hits)]
    rows += [rollout("c", 3, success=None, error="user quit", source="user"),
             rollout("a", 3, success=True, model="other")]
    metrics = rollout_metrics(table(rows), samples, pass_k_values=(2,), breakdown_keys=("category", "level"),
                              suite="s")
    groups = {("category", "x"): ["a", "b"], ("category", "y"): ["c", "d"], ("level", "easy"): ["a", "c"],
              ("level", "hard"): ["b"]}
    for (key, value), tasks in groups.items():
        rate = np.mean([np.mean(outcomes[t]) for t in tasks])
        pass2 = np.mean([1 - special.comb(3 - sum(outcomes[t]), 2) / special.comb(3, 2) for t in tasks])
        assert row_of(metrics, "success_rate", key, value)["value"] == pytest.approx(rate)
        assert row_of(metrics, "pass@2", key, value)["value"] == pytest.approx(pass2)
        assert row_of(metrics, "pass@2", key, value)["n"] == len(tasks)
        user_errors = metrics[(metrics["metric"] == "errors.user") & (metrics["breakdown_key"] == key)
                              & (metrics["breakdown_value"] == value)]
        assert user_errors["value"].tolist() == ([1.0] if "c" in tasks else [])  # a row only when nonzero
        assert row_of(metrics, "success_rate", key, value)["errors"] == (1 if "c" in tasks else 0)
    single = row_of(metrics, "success_rate", "level", "hard")
    assert single["n"] == 1 and math.isnan(single["ci_low"])
    assert row_of(metrics, "success_rate", model="other")["value"] == 1.0
    assert set(metrics["suite"]) == {"s"}
    assert rollout_metrics(table(rows), samples, pass_k_values=(2,), breakdown_keys=("category",)).equals(
        rollout_metrics(table(rows), samples, pass_k_values=(2,), breakdown_keys=("category",)))


# (e) common random numbers and count rows only when nonzero -------------------------------------------------------

def quickstart_like(rng: np.random.Generator, reward_scale: float = 1.0) -> pd.DataFrame:
    """8 tasks × 4 rollouts (the shape of evals/agent_quickstart.yaml), reward = scale × success."""
    hits = rng.random((8, 4)) < np.linspace(0.0, 0.9, 8)[:, None]
    return table([rollout(f"t{t}", j, success=bool(hits[t, j]), reward=reward_scale * float(hits[t, j]))
                  for t in range(8) for j in range(4)])


def interval(row: pd.Series) -> tuple[float, float, float]:
    return float(row["ci_low"]), float(row["ci_high"]), float(row["stderr"])


def test_metrics_with_identical_per_task_values_get_identical_intervals() -> None:
    """pass@1, pass^1 and success_rate have the same per-task values (c/n): the same task indices give the same
    interval, overall and per breakdown value."""
    rows = quickstart_like(np.random.default_rng(3))
    samples = pd.DataFrame({"sample_id": [f"t{t}" for t in range(8)], "category": ["x", "y"] * 4, "metadata": "{}"})
    metrics = rollout_metrics(rows, samples, pass_k_values=(1, 4), breakdown_keys=("category",), seed=11)
    for key, value in ((None, None), ("category", "x"), ("category", "y")):
        success = interval(row_of(metrics, "success_rate", key, value))
        assert not math.isnan(success[0])
        assert interval(row_of(metrics, "pass@1", key, value)) == success
        assert interval(row_of(metrics, "pass^1", key, value)) == success


def test_every_metric_of_a_group_is_resampled_with_the_same_task_indices() -> None:
    """Reward = 2 × success: each resample's mean reward is twice its success rate, so the mean_reward interval is
    exactly twice the success_rate one (independent draws per metric would not give that)."""
    metrics = rollout_metrics(quickstart_like(np.random.default_rng(5), reward_scale=2.0), pass_k_values=(1,))
    low, high, stderr = interval(row_of(metrics, "success_rate"))
    assert interval(row_of(metrics, "mean_reward")) == pytest.approx((2 * low, 2 * high, 2 * stderr), abs=1e-12)


def test_a_metric_that_leaves_tasks_out_still_draws_them() -> None:
    """Tasks left out of pass@k are drawn and skipped: the resampled means against a plain loop over the same draws."""
    values = np.array([0.2, np.nan, 1.0, 0.0, np.nan, 0.6, 0.9])
    ours = task_bootstrap(values, value_range=UNIT, resamples=3000, rng=np.random.default_rng(9), allow_nan=True)
    draws = np.random.default_rng(9).integers(0, values.size, size=(3000, values.size))
    means = []
    for row in draws:
        drawn = [values[i] for i in row if not math.isnan(values[i])]
        if drawn:
            means.append(sum(drawn) / len(drawn))
    assert ours.n == 5 and ours.value == pytest.approx(np.nanmean(values))
    assert (ours.ci_low, ours.ci_high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-12)
    assert ours.stderr == pytest.approx(np.std(means, ddof=1), abs=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        task_bootstrap(values, value_range=UNIT)


def test_count_rows_appear_only_when_nonzero() -> None:
    clean = rollout_metrics(quickstart_like(np.random.default_rng(1)), pass_k_values=(1, 4))
    assert set(clean["metric"]) == {"mean_reward", "success_rate", "pass@1", "pass^1", "pass@4", "pass^4"}
    rows = [rollout("a", j, success=j == 0) for j in range(3)] + [rollout("b", j, success=True) for j in range(2)]
    rows.append(rollout("b", 2, success=None, error="the simulated user failed", source="user"))
    metrics = rollout_metrics(table(rows), pass_k_values=(1, 3))
    assert sorted(m for m in metrics["metric"] if m.startswith(("errors.", "tasks_left_out"))) == \
        ["errors.user", "tasks_left_out@3"]
    assert row_of(metrics, "errors.user")["value"] == 1 and row_of(metrics, "errors.user")["n"] == 6
    assert row_of(metrics, "tasks_left_out@3")["value"] == 1 and row_of(metrics, "tasks_left_out@3")["n"] == 2
    assert set(metrics["errors"]) == {1}
