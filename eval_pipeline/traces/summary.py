"""What a batch evaluation reports about its results: per-evaluator summaries and session counts in the service's
shape (``get_batch_evaluation``'s ``evaluationResults``), and means with intervals per evaluator (METRICS rows).

Decisions, where the service's documentation is silent:

- ``averageScore`` is the mean of ``value`` over the evaluator's results that have one: ``value`` is the only
  number a result of the service carries (its ``evaluationResults[].value``, on the evaluator's own scale), so
  its average is over that. It is None when no result has a value. ``totalEvaluated`` counts the results with a
  value, ``totalFailed`` those with an error.
- A session is failed when it has a session error (no bodies) or every one of its results is an error; completed
  when it has a result with a value; in progress when it has no result yet (not reached, or left out by a stop).
  ``totalNumberOfSessions`` counts the sessions given; ``numberOfSessionsIgnored`` is what the caller passes
  (sessions the source had but the job did not take).
- Metrics (``evaluation_metrics``) average ``score`` (the value normalized to [0, 1]) over the results with one,
  so intervals stay inside [0, 1]. A SESSION evaluator has one result per session, and the interval is the usual
  one (``metrics.summary.mean_estimate``: Clopper–Pearson for 0/1 scores, Korn–Graubard otherwise). TRACE and
  TOOL_CALL evaluators have several results per session, which are not independent: their mean is over results
  (the same figure as ``averageScore`` on the normalized scale) and its interval is the cluster-robust
  Korn–Graubard interval (``cluster_korn_graubard``): the variance of the ratio mean from per-session residual
  totals, v = G/(G−1) · Σ_g (Σ_{i∈g} (y_i − ȳ))² / N², turned into an effective sample size over the G
  sessions (``metrics.intervals.korn_graubard`` with n = G and variance G·v, so its t correction has G − 1
  degrees of freedom). With one result per session it is exactly the Korn–Graubard interval of those results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.metrics.intervals import korn_graubard
from eval_pipeline.metrics.ranges import UNIT
from eval_pipeline.metrics.summary import MeanEstimate, mean_estimate
from eval_pipeline.traces.sessions import Session

CLUSTER_METHOD = "cluster_korn_graubard"


def evaluator_summaries(results: pd.DataFrame) -> list[dict[str, object]]:
    """``evaluatorSummaries``: per evaluator (first seen first) ``{evaluatorId, statistics: {averageScore},
    totalEvaluated, totalFailed}``."""
    summaries = []
    for evaluator_id, rows in results.groupby("evaluator_id", sort=False):
        values = rows.loc[rows["error"].isna(), "value"].dropna().astype(float)
        summaries.append({"evaluatorId": evaluator_id,
                          "statistics": {"averageScore": float(values.mean()) if len(values) else None},
                          "totalEvaluated": len(values), "totalFailed": int(rows["error"].notna().sum())})
    return summaries


def session_counts(sessions: Sequence[Session], results: pd.DataFrame, ignored: int = 0) -> dict[str, int]:
    """The service's session counts (see the module docstring for what failed and completed mean)."""
    valued = set(results.loc[results["error"].isna() & results["value"].notna(), "session_id"])
    seen = set(results["session_id"])
    completed = failed = in_progress = 0
    for session in sessions:
        if session.error is not None or (session.session_id in seen and session.session_id not in valued):
            failed += 1
        elif session.session_id in valued:
            completed += 1
        else:
            in_progress += 1
    return {"numberOfSessionsCompleted": completed, "numberOfSessionsInProgress": in_progress,
            "numberOfSessionsFailed": failed, "totalNumberOfSessions": len(sessions),
            "numberOfSessionsIgnored": int(ignored)}


def cluster_mean_estimate(values: np.ndarray, clusters: np.ndarray, confidence: float = 0.95) -> MeanEstimate:
    """The mean of ``values`` in [0, 1] with the cluster-robust Korn–Graubard interval over ``clusters`` (see the
    module docstring); no interval with fewer than two clusters."""
    values = np.asarray(values, dtype=float)
    n = int(values.size)
    if n == 0:
        return MeanEstimate(math.nan, math.nan, math.nan, math.nan, 0)
    UNIT.check(values)
    mean = float(values.mean())
    _, index = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    groups = int(index.max()) + 1
    if groups < 2:
        return MeanEstimate(mean, math.nan, math.nan, math.nan, n)
    totals = np.bincount(index, weights=values - mean, minlength=groups)
    variance = groups / (groups - 1) * float(np.sum(totals ** 2)) / n ** 2
    low, high = korn_graubard(mean, variance * groups, groups, confidence)
    return MeanEstimate(mean, math.sqrt(variance), float(low), float(high), n, CLUSTER_METHOD)


def evaluation_metrics(results: pd.DataFrame, *, suite: str, model: str | None,
                       breakdown: Mapping[str, Mapping[str, str]] | None = None,
                       breakdown_keys: Sequence[str] = ()) -> pd.DataFrame:
    """METRICS rows per evaluator (``metric`` = its id): overall, then per value of each breakdown key
    (``breakdown``: session id -> {key: value}, e.g. a session's ``metadata`` or ``testScenarioId``). ``n``
    counts results with a score, ``errors`` the error rows; ``ci_method`` names the interval."""
    rows = []
    for evaluator_id, frame in results.groupby("evaluator_id", sort=False):
        rows.append(_metric_row(suite, model, str(evaluator_id), None, None, frame))
        for key in breakdown_keys:
            groups = [_text((breakdown or {}).get(session, {}).get(key)) for session in frame["session_id"]]
            for value in sorted({v for v in groups if v is not None}):
                selected = np.array([v == value for v in groups], dtype=bool)
                rows.append(_metric_row(suite, model, str(evaluator_id), key, value, frame[selected]))
    return pd.DataFrame(rows, columns=METRICS.names)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


def _metric_row(suite: str, model: str | None, metric: str, key: str | None, value: str | None,
                frame: pd.DataFrame) -> dict[str, object]:
    scored = frame[frame["error"].isna() & frame["score"].notna()]
    scores = scored["score"].to_numpy(dtype=float)
    per_session = scored.groupby("session_id").size()
    if len(per_session) and int(per_session.max()) > 1:
        estimate = cluster_mean_estimate(scores, scored["session_id"].to_numpy())
    else:
        estimate = mean_estimate(scores, value_range=UNIT)
    return {"suite": suite, "model": model, "metric": metric, "breakdown_key": key, "breakdown_value": value,
            "value": estimate.value, "stderr": estimate.stderr, "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high, "n": estimate.n, "errors": int(frame["error"].notna().sum()), "k": None,
            "ci_method": estimate.method}
