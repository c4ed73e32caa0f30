"""Declarative automation over staleness: re-materialize exactly the stale partitions of a suite's stages.

A stage's ``code_version`` follows what changes its output (``tasks/stage_versions.py``), so after a change of the
judge only ``judgments`` and ``metrics`` are stale. ``stale_rerun_condition`` is true for a partition Dagster
reports STALE (materialized before, and its code version or an input's data version moved since), never for a
missing one (a new model partition is the sensors' job), once none of its inputs is stale or running (an input
requested in the same tick and run counts as done: judgments and metrics of a model go in one run).

The per-suite ``<suite>_staleness`` sensor evaluates it (in the code server: the condition reads Dagster's own
stale-status resolver, the one the UI shows) on every stage of the suite that has no condition of its own. It is
STOPPED by default: nothing re-runs unless a user turns it on.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus

from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks.stage_versions import stage_versions


class StaleCondition(dg.AutomationCondition):
    """True for the partitions of the asset that Dagster reports STALE (never for missing ones)."""

    @property
    def name(self) -> str:
        return "stale"

    @property
    def description(self) -> str:
        return "Materialized, and its code version or an input's data version changed since"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # type: ignore[override]
        view = context.asset_graph_view
        resolver = CachingStaleStatusResolver(view.instance, context.asset_graph, loading_context=view,
                                              instance_queryer=view.get_inner_queryer_for_back_compat())
        stale = {partition for partition in context.candidate_subset.expensively_compute_asset_partitions()
                 if resolver.get_status(partition.asset_key, partition.partition_key) == StaleStatus.STALE}
        subset = view.get_asset_subset_from_asset_partitions(context.key, stale)  # type: ignore[arg-type]
        return dg.AutomationResult(context=context, true_subset=subset)


def stale_rerun_condition() -> dg.AutomationCondition:
    """Stale, not in progress, not failed in its latest run (fix and re-run by hand: no retry loop), and waiting
    for no input (an input that is stale and not requested in this same run, or in progress)."""
    stale = StaleCondition()
    waiting_input = (stale & ~dg.AutomationCondition.will_be_requested()) | dg.AutomationCondition.in_progress()
    return (stale & ~dg.AutomationCondition.in_progress() & ~dg.AutomationCondition.execution_failed()
            & ~dg.AutomationCondition.any_deps_match(waiting_input)).with_label("stale: re-run")


def staleness_sensor_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_staleness"


def staleness_sensor(suite: Suite, assets: Sequence[dg.AssetsDefinition]) -> dg.AutomationConditionSensorDefinition:
    """Re-runs the stale partitions of the suite's versioned stages (``stage_versions``: not an asset acting on
    the world, such as ``promote``) that have no automation condition of their own (a sharded suite's metrics
    aggregate eagerly by theirs); default STOPPED."""
    stages = stage_versions(suite)
    keys = [spec.key for asset in assets for spec in asset.specs
            if spec.automation_condition is None and spec.key.path[-1] in stages]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # use_user_code_server, default_condition: beta in 1.13
        return _sensor(suite, keys)


def _sensor(suite: Suite, keys: list[dg.AssetKey]) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        staleness_sensor_name(suite), target=dg.AssetSelection.assets(*keys).without_checks(),
        default_condition=stale_rerun_condition(), use_user_code_server=True, emit_backfills=False,
        default_status=dg.DefaultSensorStatus.STOPPED, minimum_interval_seconds=60,
        run_tags={"eval/suite": suite.suite, "eval/trigger": "stale"},
        description=f"Re-runs the stale partitions of {suite.suite}'s stages (a changed judge re-judges and "
                    "re-aggregates, nothing else); missing partitions are left to the sensors. Off until turned on.")
