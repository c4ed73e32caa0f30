"""The rollouts table into METRICS rows: mean reward, success rate, pass@k and pass^k, with task-level intervals.

Per model, overall and per breakdown value (a samples column or metadata field, as for the other task kinds):

- ``mean_reward``: mean over tasks of each task's mean reward; interval inside the rewards' observed bounds.
- ``success_rate``: mean over tasks of each task's share of successful rollouts; interval inside [0, 1].
- ``pass@k`` and ``pass^k`` for each k: mean over tasks of the unbiased estimators (``passk``) with n = the task's
  non-error rollouts and c = its successes; ``k`` is set, and tasks with fewer than k valid rollouts are left out
  (``n`` counts the tasks used) and counted in ``tasks_left_out@k`` (value = that count, ``n`` = all tasks; a row
  only when some task was left out).
- ``errors.<source>``: the errored rollouts caused by each ``error_source`` (agent, environment, user, budget;
  ``unknown`` when a row names no source), value = the count, ``n`` = all rollouts; a row only for a source that
  caused errors (no row: none), and the total is in every row's ``errors`` column.

An errored rollout is excluded from every mean (it has no reward) and counted in the ``errors`` column of every
row, so a simulated user's, an environment's or the time budget's failures never silently count against the model;
the ``errors.<source>`` rows say whose failures they were. Intervals are task-level bootstraps
(``task_bootstrap``, ``ci_method`` = "task_bootstrap") with common random numbers: every metric of one model and
breakdown value is resampled with the same task indices (seeded from ``seed``, the model and the breakdown value),
so metrics with identical per-task values (pass@1 and success_rate) get identical intervals, and the same inputs
give the same table.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.metrics.aggregate import breakdown_column
from eval_pipeline.metrics.passk import pass_at_k, pass_hat_k
from eval_pipeline.metrics.ranges import UNBOUNDED, UNIT, ValueRange
from eval_pipeline.metrics.task_bootstrap import DEFAULT_RESAMPLES, task_bootstrap

ERROR_SOURCES = ("agent", "environment", "user", "budget")
UNKNOWN_SOURCE = "unknown"
_ESTIMATORS = (("pass@", pass_at_k), ("pass^", pass_hat_k))


def task_table(rollouts: pd.DataFrame) -> pd.DataFrame:
    """Per model × task: ``n`` non-error rollouts, ``c`` successes, ``reward`` (mean over them, NaN when n = 0)
    and ``errors`` (errored rollouts). Raises ValueError for a rollout with neither an error nor a reward."""
    failed = rollouts["error"].notna()
    incomplete = ~failed & (rollouts["reward"].isna() | rollouts["success"].isna())
    if incomplete.any():
        bad = rollouts[incomplete].iloc[0]
        raise ValueError(f"rollout {bad.get('rollout_id')!r} (task {bad['sample_id']!r}, model {bad['model']!r}) "
                         "has no error but no reward or success")
    frame = rollouts.assign(valid=(~failed).astype(int), failed=failed.astype(int),
                            hit=(~failed & rollouts["success"].fillna(False).astype(bool)).astype(int),
                            valid_reward=rollouts["reward"].where(~failed))
    grouped = frame.groupby(["model", "sample_id"], sort=False)
    return grouped.agg(n=("valid", "sum"), c=("hit", "sum"), reward=("valid_reward", "mean"),
                       errors=("failed", "sum")).reset_index()


def rollout_metrics(rollouts: pd.DataFrame, samples: pd.DataFrame | None = None, *,
                    pass_k_values: Sequence[int] = (1,), breakdown_keys: Sequence[str] = (),
                    suite: str | None = None, resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """METRICS rows of a rollouts table (see the module's docstring), overall and per breakdown value."""
    ks = [int(k) for k in pass_k_values]
    if any(k < 1 for k in ks):
        raise ValueError(f"pass_k_values must be positive integers, got {list(pass_k_values)!r}")
    if breakdown_keys and samples is None:
        raise ValueError("breakdowns need the samples table")
    group_of = {key: _groups(samples, key) for key in breakdown_keys}
    tasks = task_table(rollouts)
    rows: list[dict[str, object]] = []
    for model, model_tasks in tasks.groupby("model", sort=False):
        model_rollouts = rollouts[rollouts["model"] == model]
        reward_range = _observed_range(model_tasks["reward"].dropna().to_numpy())
        context = _Context(suite, str(model), ks, reward_range, resamples, confidence, seed)
        rows += context.rows(model_tasks, model_rollouts, None, None)
        for key in breakdown_keys:
            task_group = model_tasks["sample_id"].map(group_of[key])
            rollout_group = model_rollouts["sample_id"].map(group_of[key])
            for value in sorted({v for v in group_of[key].values() if v is not None}):
                rows += context.rows(model_tasks[np.asarray(task_group == value)],
                                     model_rollouts[np.asarray(rollout_group == value)], key, value)
    return pd.DataFrame(rows, columns=METRICS.names)


class _Context:
    """What the rows of one model share: the k values, the reward range and the bootstrap's settings."""

    def __init__(self, suite: str | None, model: str, ks: list[int], reward_range: ValueRange, resamples: int,
                 confidence: float, seed: int) -> None:
        self.suite, self.model, self.ks, self.reward_range = suite, model, ks, reward_range
        self.resamples, self.confidence, self.seed = resamples, confidence, seed

    def rows(self, tasks: pd.DataFrame, rollouts: pd.DataFrame, key: str | None,
             value: str | None) -> list[dict[str, object]]:
        errors = int(tasks["errors"].sum())
        n, c = tasks["n"].to_numpy(), tasks["c"].to_numpy()
        scored = n > 0  # per-task values are aligned with ``tasks``; NaN where a metric leaves the task out
        rate = np.divide(c, n, out=np.full(n.shape, np.nan), where=scored)
        rows = [self._estimate("mean_reward", None, tasks["reward"].to_numpy(dtype=float), self.reward_range, errors,
                               key, value),
                self._estimate("success_rate", None, rate, UNIT, errors, key, value)]
        for k in self.ks:
            for label, estimator in _ESTIMATORS:
                per_task = np.asarray(estimator(n, c, k), dtype=float).reshape(-1)
                rows.append(self._estimate(f"{label}{k}", k, per_task, UNIT, errors, key, value))
            left_out = int((n < k).sum())
            if left_out:
                rows.append(self._count(f"tasks_left_out@{k}", left_out, len(tasks), errors, key, value, k))
        for source, count in _errors_by_source(rollouts):
            rows.append(self._count(f"errors.{source}", count, len(rollouts), errors, key, value, None))
        return rows

    def _estimate(self, metric: str, k: int | None, per_task: np.ndarray, value_range: ValueRange, errors: int,
                  key: str | None, value: str | None) -> dict[str, object]:
        """The metric's bootstrap over the group's tasks (NaN: a task it leaves out), with the group's random numbers
        (seeded from the model and breakdown value, not the metric: common random numbers)."""
        rng = np.random.default_rng([self.seed, zlib.crc32(f"{self.model}\0{key}\0{value}".encode())])
        estimate = task_bootstrap(per_task, value_range=value_range, resamples=self.resamples,
                                  confidence=self.confidence, rng=rng, allow_nan=True)
        return self._row(metric, key, value, estimate.value, estimate.stderr, estimate.ci_low, estimate.ci_high,
                         estimate.n, errors, k, estimate.method)

    def _count(self, metric: str, count: int, n: int, errors: int, key: str | None, value: str | None,
               k: int | None) -> dict[str, object]:
        return self._row(metric, key, value, float(count), math.nan, math.nan, math.nan, n, errors, k, None)

    def _row(self, metric: str, key: str | None, value: str | None, point: float, stderr: float, low: float,
             high: float, n: int, errors: int, k: int | None, method: str | None) -> dict[str, object]:
        return {"suite": self.suite, "model": self.model, "metric": metric, "breakdown_key": key,
                "breakdown_value": value, "value": point, "stderr": stderr, "ci_low": low, "ci_high": high,
                "n": n, "errors": errors, "k": k, "ci_method": method}


def _errors_by_source(rollouts: pd.DataFrame) -> Iterator[tuple[str, int]]:
    """The count of each source that caused errors: the known sources in their order, then any other seen."""
    failed = rollouts[rollouts["error"].notna()]
    counts = failed["error_source"].where(failed["error_source"].notna(), UNKNOWN_SOURCE).value_counts()
    for source in (*ERROR_SOURCES, *sorted(set(counts.index) - set(ERROR_SOURCES))):
        if counts.get(source, 0):
            yield str(source), int(counts[source])


def _groups(samples: pd.DataFrame, key: str) -> dict[str, str | None]:
    """Task id -> its breakdown value; None where the sample has none (``breakdown_column`` gives NaN there)."""
    values = breakdown_column(samples, key)
    return {task: value if isinstance(value, str) else None
            for task, value in zip(samples["sample_id"], values, strict=True)}


def _observed_range(rewards: np.ndarray) -> ValueRange:
    """The rewards' observed bounds; unbounded when they do not span an interval (no rewards, or all equal)."""
    if rewards.size == 0 or rewards.min() == rewards.max():
        return UNBOUNDED
    return ValueRange(float(rewards.min()), float(rewards.max()))
