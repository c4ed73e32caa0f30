"""Asset backfills of a suite's model (× shard) partitions, submitted to the instance for ``dagster-daemon`` to run.

A backfill is Dagster's own: the ``launchPartitionBackfill`` GraphQL mutation, executed in this process against the
code location loaded in process (dagster-graphql's ``execute_query``; no webserver needed), records it in the
instance; the daemon's backfill loop launches its runs through the run queue (tag concurrency limits, retries of
runs whose worker died), and its progress is read back through the same GraphQL schema.

The models of one backfill share a backend: the backfill's runs carry ``eval/backend``, so the instance's limit
per backend value queues runs that call one service; models of several backends make one backfill per backend.

An asset with an automation condition of its own (a sharded suite's ``metrics``, aggregated by the suite's
automation sensor once every shard of a model is materialized) is not in the backfill: Dagster's automation runs
it, once per model, after the backfill's shards; a backfill that also targeted it would aggregate a model twice
when a shard's run is retried (the retried partition leaves the backfill's in-progress set while it runs again).
``aggregation_progress`` follows those assets for ``--wait``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import add_partitions, model_partitions, shard_keys
from eval_pipeline.assets.run_tags import suite_run_tags
from eval_pipeline.assets.suite_assets import suite_comparison_stages
from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites.spec import Suite

LOCATION_NAME = "eval_pipeline"
"""The code location's name in ``workspace.yaml``."""
DEFINITIONS_MODULE = "eval_pipeline.definitions"
BACKFILL_ID_TAG = "dagster/backfill"
SUCCESS_STATUSES = frozenset({"COMPLETED_SUCCESS", "COMPLETED"})
FAILED_STATUSES = frozenset({"COMPLETED_FAILED", "FAILED", "CANCELED"})
DAEMON_STALE_S = 60.0

LAUNCH_BACKFILL = """
mutation EvalLaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionKeysNotFoundError { message partitionKeys }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

BACKFILL_STATUS = """
query EvalBackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      error { message }
      assetBackfillData {
        assetBackfillStatuses {
          __typename
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted
            numPartitionsInProgress
            numPartitionsMaterialized
            numPartitionsFailed
          }
          ... on UnpartitionedAssetStatus { assetKey { path } inProgress materialized failed }
        }
      }
    }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""


class BackfillError(RuntimeError):
    """Dagster refused a backfill or its status could not be read; the message says why."""


@dataclass(frozen=True)
class BackfillRequest:
    """One backfill to submit: the suite's assets over the partitions of models that share a backend."""

    suite: str
    backend: str
    models: tuple[str, ...]
    asset_keys: tuple[tuple[str, ...], ...]
    partition_keys: tuple[str, ...]
    """The keys of the root partitioned assets (the per-item stages): models, or ``<model>|<shard>``."""
    tags: dict[str, str] = field(default_factory=dict)
    automated_keys: tuple[tuple[str, ...], ...] = ()
    """The suite's assets its automation materializes after the backfill (one partition per model)."""

    @property
    def description(self) -> str:
        return (f"eval-pipeline backfill of suite {self.suite}: {', '.join(self.models)} ({self.backend}, "
                f"{len(self.partition_keys)} partitions)")

    def graphql_params(self) -> dict[str, Any]:
        """``LaunchBackfillParams``: an asset backfill of ``asset_keys`` from the root partitions, with the tags."""
        return {
            "assetSelection": [{"path": list(key)} for key in self.asset_keys],
            "partitionNames": list(self.partition_keys),
            "tags": [{"key": key, "value": value} for key, value in self.tags.items()],
            "description": self.description,
        }


@dataclass(frozen=True)
class BackfillProgress:
    """What the backfill has done: asset partitions targeted, finished (materialized or failed), failed."""

    backfill_id: str
    status: str
    targeted: int
    materialized: int
    failed: int
    in_progress: int
    error: str | None = None

    @property
    def done(self) -> int:
        return self.materialized + self.failed

    @property
    def finished(self) -> bool:
        return self.status in SUCCESS_STATUSES or self.status in FAILED_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCESS_STATUSES and self.failed == 0


@dataclass(frozen=True)
class SuiteAssets:
    """The suite's assets for a backfill: those it materializes, and those automation materializes after it."""

    backfilled: tuple[tuple[str, ...], ...]
    automated: tuple[tuple[str, ...], ...] = ()


def backfill_asset_keys(suite: Suite, groups: dict[dg.AssetKey, str | None], automated: set[dg.AssetKey],
                        children: dict[dg.AssetKey, set[dg.AssetKey]] | None = None) -> SuiteAssets:
    """The suite's group but the comparison with the baseline (as the ``<suite>_eval`` jobs), split into what the
    backfill materializes and what has an automation condition of its own (``automated``), each sorted. What is
    downstream of an automated asset (a ``promotion`` after a sharded suite's ``metrics``) is in neither: it
    follows the automation, not the backfill."""
    comparison = {dg.AssetKey([suite.suite, stage]) for stage in suite_comparison_stages(suite)}
    keys = [key for key, group in groups.items() if group == suite.suite and key not in comparison]
    after, pending = set(), [child for key in automated for child in (children or {}).get(key, set())]
    while pending:
        key = pending.pop()
        if key not in after:
            after.add(key)
            pending += (children or {}).get(key, set())
    return SuiteAssets(tuple(sorted(tuple(key.path) for key in keys if key not in automated | after)),
                       tuple(sorted(tuple(key.path) for key in keys if key in automated)))


def plan_backfills(suite: Suite, models: Sequence[str] | None, assets: SuiteAssets) -> list[BackfillRequest]:
    """One request per backend among the chosen models (default: every declared model), in declaration order;
    an unknown model is an input error naming the suite and the known ones."""
    chosen = list(dict.fromkeys(models)) if models else [m.name for m in suite.models]
    by_backend: dict[str, list[str]] = {}
    for name in chosen:
        try:
            spec = suite.model(name)  # a declared model, or a checkpoint of the watched source
        except KeyError:
            raise EvalInputError(f"suite {suite.suite} has no model {name!r} (its models: "
                                 f"{', '.join(m.name for m in suite.models)})", file=suite.source_path,
                                 field="models") from None
        by_backend.setdefault(spec.backend, []).append(name)
    return [BackfillRequest(
        suite=suite.suite, backend=backend, models=tuple(names), asset_keys=assets.backfilled,
        partition_keys=tuple(str(key) for name in names for key in shard_keys(suite, name)),
        tags=suite_run_tags(suite.suite, backend=backend), automated_keys=assets.automated)
        for backend, names in by_backend.items()]


def progress_from_graphql(backfill: dict[str, Any]) -> BackfillProgress:
    """A ``PartitionBackfill`` answer as counts: each asset partition (or unpartitioned asset) counts once."""
    targeted = materialized = failed = in_progress = 0
    for status in (backfill.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []:
        if status["__typename"] == "AssetPartitionsStatusCounts":
            targeted += status["numPartitionsTargeted"]
            materialized += status["numPartitionsMaterialized"]
            failed += status["numPartitionsFailed"]
            in_progress += status["numPartitionsInProgress"]
        else:
            targeted += 1
            materialized += int(status["materialized"])
            failed += int(status["failed"])
            in_progress += int(status["inProgress"])
    error = (backfill.get("error") or {}).get("message")
    return BackfillProgress(str(backfill["id"]), str(backfill["status"]), targeted, materialized, failed,
                            in_progress, error)


@dataclass
class RateMeter:
    """Rate and time left from (done, total) samples and an injected clock (seconds)."""

    clock: Callable[[], float] = time.monotonic
    _start: tuple[float, int] | None = None

    def line(self, progress: BackfillProgress) -> str:
        """``backfill <id>: 12/40 asset partitions (2 failed), 0.50/s, ~56 s left, 3 in progress``."""
        now = self.clock()
        if self._start is None:
            self._start = (now, progress.done)
        started_at, done_at_start = self._start
        elapsed, gained = now - started_at, progress.done - done_at_start
        rate = gained / elapsed if elapsed > 0 and gained > 0 else None
        left = progress.targeted - progress.done
        parts = [f"backfill {progress.backfill_id}: {progress.done}/{progress.targeted} asset partitions"
                 + (f" ({progress.failed} failed)" if progress.failed else "")]
        parts.append(f"{rate:.2f}/s" if rate else "rate: -")
        parts.append(f"~{_duration(left / rate)} left" if rate and left > 0 else "time left: -" if left else "done")
        parts.append(f"{progress.in_progress} in progress, {progress.status}")
        return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@contextlib.contextmanager
def workspace_context(instance: dg.DagsterInstance) -> Iterator[Any]:
    """The code location loaded in this process (no code server), for GraphQL against ``instance``."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE,
                                                    working_directory=os.getcwd()),
        location_name=LOCATION_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # the definitions' beta APIs: noise on a command line
        warnings.simplefilter("ignore", dg.PreviewWarning)
        with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
            error = context.create_request_context().get_code_location_error(LOCATION_NAME)
            if error is not None:
                raise BackfillError(f"the code location {LOCATION_NAME} failed to load: {error.to_string()}")
            yield context


def execute_graphql(context: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` of a GraphQL document run in process; GraphQL errors raise ``BackfillError``."""
    from dagster_graphql.cli import execute_query

    result = execute_query(context, query, variables)
    if result.get("errors"):
        raise BackfillError("; ".join(str(error.get("message")) for error in result["errors"]))
    return result["data"]


def suite_asset_keys(context: Any, suite: Suite) -> SuiteAssets:
    """``backfill_asset_keys`` over the asset graph of the loaded code location (what the daemon will run)."""
    graph = context.create_request_context().asset_graph
    nodes = {key: graph.get(key) for key in graph.get_all_asset_keys()}
    asset_keys = backfill_asset_keys(suite, {key: node.group_name for key, node in nodes.items()},
                                     {key for key, node in nodes.items() if node.automation_condition is not None},
                                     {key: set(node.child_keys) for key, node in nodes.items()})
    if not asset_keys.backfilled:
        raise EvalInputError(f"suite {suite.suite} has no assets in the code location {LOCATION_NAME} (is it in "
                             "$EVAL_PIPELINE_SUITES?)", file=suite.source_path)
    return asset_keys


def launch_backfill(context: Any, request: BackfillRequest) -> str:
    """Submit one backfill; returns its id. Dagster's refusal raises ``BackfillError`` with its message."""
    answer = execute_graphql(context, LAUNCH_BACKFILL, {"params": request.graphql_params()})
    result = answer["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise BackfillError(f"Dagster refused the backfill of {request.suite} ({result['__typename']}): "
                            f"{result.get('message')}")
    return str(result["backfillId"])


def backfill_progress(context: Any, backfill_id: str) -> BackfillProgress:
    answer = execute_graphql(context, BACKFILL_STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]
    if answer["__typename"] != "PartitionBackfill":
        raise BackfillError(f"backfill {backfill_id}: {answer.get('message')}")
    return progress_from_graphql(answer)


def submit_suite_backfills(instance: dg.DagsterInstance, context: Any, suite: Suite,
                           models: Sequence[str] | None) -> list[tuple[BackfillRequest, str]]:
    """Register the chosen models as partitions, then submit one backfill per backend."""
    requests = plan_backfills(suite, models, suite_asset_keys(context, suite))
    add_partitions(instance, model_partitions(suite).name, [name for r in requests for name in r.models])
    return [(request, launch_backfill(context, request)) for request in requests]


def daemon_running(instance: dg.DagsterInstance, now: float | None = None) -> bool:
    """Whether the instance's backfill daemon sent a heartbeat within the last minute."""
    heartbeat = instance.get_daemon_heartbeats().get("BACKFILL")
    return heartbeat is not None and (now if now is not None else time.time()) - heartbeat.timestamp < DAEMON_STALE_S


@dataclass(frozen=True)
class AggregationProgress:
    """The automated assets' partitions (one per model) materialized, or failed, since the backfill began."""

    total: int
    done: list[str]
    failed: list[str]

    @property
    def finished(self) -> bool:
        return len(self.done) + len(self.failed) >= self.total


def aggregation_progress(instance: dg.DagsterInstance, request: BackfillRequest, since: float
                         ) -> AggregationProgress:
    """Which models' automated assets (``request.automated_keys``) have been materialized after ``since``, and
    which had their latest run since then fail without materializing them."""
    done, failed = [], []
    for path in request.automated_keys:
        key = dg.AssetKey(list(path))
        for model in request.models:
            label = f"{key.to_user_string()}[{model}]"
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[model], after_timestamp=since), limit=1)
            if records.records:
                done.append(label)
                continue
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": model}, created_after=_utc(since)),
                                     limit=5)
            latest = next((run for run in runs if run.asset_selection and key in run.asset_selection), None)
            if latest is not None and latest.status == dg.DagsterRunStatus.FAILURE:
                failed.append(f"{label}: run {latest.run_id} failed")
    return AggregationProgress(len(request.automated_keys) * len(request.models), done, failed)


def backfill_timestamp(instance: dg.DagsterInstance, backfill_id: str) -> float:
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise BackfillError(f"no backfill {backfill_id} in the instance")
    return backfill.backfill_timestamp


def _utc(timestamp: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, tz=UTC)


def failed_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    """The backfill's failed runs that no retry replaced (a run retried after its worker died is not listed)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    retried = {run.parent_run_id for run in runs if run.parent_run_id}
    return [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE and run.run_id not in retried]
