"""Summaries, session counts and metrics of trace evaluations against reference computations written here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval_pipeline.data.schemas import METRICS, TRACE_EVALUATIONS
from eval_pipeline.metrics.ranges import UNIT
from eval_pipeline.metrics.summary import mean_estimate
from eval_pipeline.traces.sessions import Session
from eval_pipeline.traces.summary import (
    CLUSTER_METHOD,
    cluster_mean_estimate,
    evaluation_metrics,
    evaluator_summaries,
    session_counts,
)


def rows(evaluator: str, level: str, items: list[tuple[str, float | None]], *, scale: float = 1.0) -> list[dict]:
    """Result rows: (session, score) with None for an error; value = score × scale."""
    return [{"session_id": s, "evaluator_id": evaluator, "level": level,
             "value": None if score is None else score * scale, "score": score,
             "error": "judge reply could not be parsed" if score is None else None,
             "error_code": "JudgeReplyUnparseable" if score is None else None} for s, score in items]


SESSION_ROWS = rows("Builtin.GoalSuccessRate", "SESSION",
                    [("s1", 1.0), ("s2", 0.0), ("s3", 1.0), ("s4", None), ("s5", 1.0), ("s6", 1.0)])
TRACE_ITEMS = [("s1", 1.0), ("s1", 0.5), ("s1", 1.0), ("s2", 0.0), ("s2", 0.0), ("s3", 0.5), ("s4", None),
               ("s4", None), ("s5", 1.0), ("s5", 0.5), ("s6", 0.0), ("s6", 0.5), ("s6", 0.0), ("s6", 0.0)]
TRACE_ROWS = rows("Builtin.Helpfulness", "TRACE", TRACE_ITEMS, scale=6.0)


def frame(*parts: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r for part in parts for r in part], columns=TRACE_EVALUATIONS.names)


def cluster_reference(scores: np.ndarray, clusters: np.ndarray) -> tuple[float, float, float, float]:
    """The cluster-robust Korn–Graubard interval written out with scipy.stats: mean, stderr, low, high."""
    m, n = scores.mean(), scores.size
    labels = list(dict.fromkeys(clusters))
    g = len(labels)
    totals = np.array([np.sum(scores[clusters == c] - m) for c in labels])
    v = g / (g - 1) * np.sum(totals ** 2) / n ** 2
    phi = (g * v) / (m * (1 - m)) if 0 < m < 1 else 1.0
    phi = (g * phi + 2) / (g + 2)
    n_eff = g / phi * (stats.norm.ppf(0.975) / stats.t.ppf(0.975, g - 1)) ** 2
    x = m * n_eff
    low = 0.0 if x <= 0 else stats.beta.ppf(0.025, x, n_eff - x + 1)
    high = 1.0 if x >= n_eff else stats.beta.ppf(0.975, x + 1, n_eff - x)
    return m, math.sqrt(v), low, high


def test_evaluator_summaries_in_the_service_shape() -> None:
    summaries = evaluator_summaries(frame(SESSION_ROWS, TRACE_ROWS))
    trace_values = [6.0 * s for _, s in TRACE_ITEMS if s is not None]
    assert summaries == [
        {"evaluatorId": "Builtin.GoalSuccessRate", "statistics": {"averageScore": pytest.approx(4 / 5)},
         "totalEvaluated": 5, "totalFailed": 1},
        {"evaluatorId": "Builtin.Helpfulness",
         "statistics": {"averageScore": pytest.approx(sum(trace_values) / len(trace_values))},
         "totalEvaluated": 12, "totalFailed": 2},
    ]
    only_errors = evaluator_summaries(frame(rows("Builtin.Refusal", "TRACE", [("s1", None)])))
    assert only_errors == [{"evaluatorId": "Builtin.Refusal", "statistics": {"averageScore": None},
                            "totalEvaluated": 0, "totalFailed": 1}]


def test_session_counts() -> None:
    sessions = [Session(s, ()) for s in ("s1", "s2", "s3", "s4", "s5")] + [
        Session("dry", (), error="no bodies", error_code="LogEventMissingException"), Session("later", ())]
    results = frame(SESSION_ROWS[:5], rows("X", "SESSION", [("dry", None)]))
    # s1-s3, s5 have a value; s4 only errors; dry has a session error; "later" has no result yet
    assert session_counts(sessions, results, ignored=3) == {
        "numberOfSessionsCompleted": 4, "numberOfSessionsInProgress": 1, "numberOfSessionsFailed": 2,
        "totalNumberOfSessions": 7, "numberOfSessionsIgnored": 3}


def test_metrics_of_a_session_evaluator_use_the_exact_binomial_interval() -> None:
    metrics = evaluation_metrics(frame(SESSION_ROWS), suite="agents", model="agent-v1")
    assert list(metrics.columns) == METRICS.names and len(metrics) == 1
    row = metrics.iloc[0]
    low, high = stats.beta.ppf(0.025, 4, 2), stats.beta.ppf(0.975, 5, 1)  # 4 of 5, Clopper–Pearson
    assert (row["metric"], row["n"], row["errors"], row["ci_method"]) == (
        "Builtin.GoalSuccessRate", 5, 1, "clopper_pearson")
    assert row["value"] == pytest.approx(0.8) and (row["ci_low"], row["ci_high"]) == (
        pytest.approx(low), pytest.approx(high))
    assert row["stderr"] == pytest.approx(np.std([1, 0, 1, 1, 1], ddof=1) / math.sqrt(5))


def test_metrics_of_a_trace_evaluator_use_a_session_clustered_interval() -> None:
    metrics = evaluation_metrics(frame(TRACE_ROWS), suite="agents", model="agent-v1")
    row = metrics.iloc[0]
    scored = [(s, v) for s, v in TRACE_ITEMS if v is not None]
    scores = np.array([v for _, v in scored])
    clusters = np.array([s for s, _ in scored])
    mean, stderr, low, high = cluster_reference(scores, clusters)
    assert (row["n"], row["errors"], row["ci_method"]) == (12, 2, CLUSTER_METHOD)
    assert (row["value"], row["stderr"], row["ci_low"], row["ci_high"]) == (
        pytest.approx(mean), pytest.approx(stderr), pytest.approx(low), pytest.approx(high))
    assert 0.0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1.0
    # wider than the interval that takes the 12 results as independent (they are not)
    naive = mean_estimate(scores, value_range=UNIT)
    assert row["ci_high"] - row["ci_low"] > naive.ci_high - naive.ci_low


def test_one_result_per_session_gives_the_ordinary_interval() -> None:
    values = np.array([0.2, 0.5, 0.9, 0.4, 0.7])
    clustered = cluster_mean_estimate(values, np.array(["a", "b", "c", "d", "e"]))
    plain = mean_estimate(values, value_range=UNIT)
    assert plain.method == "korn_graubard"
    assert (clustered.ci_low, clustered.ci_high, clustered.stderr) == (
        pytest.approx(plain.ci_low), pytest.approx(plain.ci_high), pytest.approx(plain.stderr))
    one = cluster_mean_estimate(np.array([1.0, 0.0]), np.array(["a", "a"]))
    assert one.value == 0.5 and math.isnan(one.ci_low) and one.method is None
    assert cluster_mean_estimate(np.array([]), np.array([])).n == 0


def test_all_at_one_bound_still_has_an_honest_interval() -> None:
    estimate = cluster_mean_estimate(np.ones(9), np.repeat(["a", "b", "c"], 3))
    assert estimate.value == 1.0 and estimate.ci_high == 1.0 and 0.0 < estimate.ci_low < 1.0
    assert estimate.ci_low == pytest.approx(cluster_reference(np.ones(9), np.repeat(["a", "b", "c"], 3))[2])


def test_clustered_interval_keeps_its_coverage_where_the_naive_one_does_not() -> None:
    """Sessions with their own success rate (strong within-session correlation): over 400 simulated jobs the
    clustered interval covers the true mean at least nominally; the one taking traces as independent does not."""
    rng = np.random.default_rng(7)
    sessions, traces, a, b = 20, 5, 1.2, 1.8
    truth, covered, naive_covered = a / (a + b), 0, 0
    clusters = np.repeat(np.arange(sessions), traces)
    for _ in range(400):
        rates = rng.beta(a, b, sessions)
        scores = (rng.random((sessions, traces)) < rates[:, None]).astype(float).ravel()
        clustered, naive = cluster_mean_estimate(scores, clusters), mean_estimate(scores, value_range=UNIT)
        covered += clustered.ci_low <= truth <= clustered.ci_high
        naive_covered += naive.ci_low <= truth <= naive.ci_high
    assert covered / 400 >= 0.95 and naive_covered / 400 < 0.9


def test_breakdown_rows_per_value() -> None:
    breakdown = {"s1": {"split": "dev"}, "s2": {"split": "dev"}, "s3": {"split": "test"}, "s5": {"split": "test"},
                 "s6": {"split": "test"}}
    metrics = evaluation_metrics(frame(TRACE_ROWS), suite="agents", model="m", breakdown=breakdown,
                                 breakdown_keys=["split"])
    cells = metrics[["breakdown_key", "breakdown_value", "n", "errors"]].astype(object)
    assert [tuple(None if pd.isna(v) else v for v in r) for r in cells.itertuples(index=False)] == [
        (None, None, 12, 2), ("split", "dev", 5, 0), ("split", "test", 7, 0)]
    dev = metrics.iloc[1]
    scores = np.array([1.0, 0.5, 1.0, 0.0, 0.0])
    mean, _, low, high = cluster_reference(scores, np.array(["s1", "s1", "s1", "s2", "s2"]))
    assert (dev["value"], dev["ci_low"], dev["ci_high"]) == (pytest.approx(mean), pytest.approx(low),
                                                             pytest.approx(high))
