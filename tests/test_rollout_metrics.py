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
        assert row_of(metrics, f"tasks_left_out@{k}")["value"] == len(groups) - len(eligible)
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
        assert row_of(metrics, "errors.user", key, value)["value"] == (1 if "c" in tasks else 0)
        assert row_of(metrics, "success_rate", key, value)["errors"] == (1 if "c" in tasks else 0)
    single = row_of(metrics, "success_rate", "level", "hard")
    assert single["n"] == 1 and math.isnan(single["ci_low"])
    assert row_of(metrics, "success_rate", model="other")["value"] == 1.0
    assert set(metrics["suite"]) == {"s"}
    assert rollout_metrics(table(rows), samples, pass_k_values=(2,), breakdown_keys=("category",)).equals(
        rollout_metrics(table(rows), samples, pass_k_values=(2,), breakdown_keys=("category",)))
