"""The per-suite jobs: every stage of one model partition, and the comparison of all models with the baseline."""

from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions, stage_partitions
from eval_pipeline.assets.run_tags import suite_run_tags
from eval_pipeline.assets.suite_assets import shard_stages, suite_comparison_stages
from eval_pipeline.suites.spec import Suite

AssetJob = Any
"""What ``define_asset_job`` returns (its class is not part of Dagster's public API)."""


def eval_job_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_eval"


def aggregate_job_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_aggregate"


def compare_job_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_compare"


def _comparison_keys(suite: Suite) -> list[dg.AssetKey]:
    return [dg.AssetKey([suite.suite, stage]) for stage in suite_comparison_stages(suite)]


def _shard_stage_keys(suite: Suite) -> list[dg.AssetKey]:
    return [dg.AssetKey([suite.suite, stage]) for stage in shard_stages(suite)]


def _aggregate_selection(suite: Suite) -> dg.AssetSelection:
    """A sharded suite's assets partitioned by model alone: the suite's group but the samples, the per-item
    stages and the comparison."""
    per_item = [dg.AssetKey([suite.suite, "samples"]), *_shard_stage_keys(suite), *_comparison_keys(suite)]
    return dg.AssetSelection.groups(suite.suite) - dg.AssetSelection.assets(*per_item)


def suite_eval_job(suite: Suite) -> AssetJob:
    """One model partition of the suite, every stage; for a suite split into shards, one model × shard partition
    of the samples and the per-item stages (the metrics are the ``<suite>_aggregate`` job's)."""
    stages = " → ".join(("samples", *shard_stages(suite)))
    if suite.shards > 1:
        return dg.define_asset_job(
            name=eval_job_name(suite),
            selection=dg.AssetSelection.assets(dg.AssetKey([suite.suite, "samples"]), *_shard_stage_keys(suite)),
            partitions_def=stage_partitions(suite),
            description=f"Evaluate one model × shard partition of suite {suite.suite} ({suite.shards} shards): "
                        f"{stages}. The model's metrics follow once all its shards are done.",
            tags=suite_run_tags(suite.suite),
        )
    return dg.define_asset_job(
        name=eval_job_name(suite),
        selection=dg.AssetSelection.groups(suite.suite) - dg.AssetSelection.assets(*_comparison_keys(suite)),
        partitions_def=model_partitions(suite),
        description=f"Evaluate one model partition of suite {suite.suite}: samples → generations → scores "
                    f"{'→ judgments ' if suite.judge else ''}→ metrics.",
        tags=suite_run_tags(suite.suite),
    )


def suite_aggregate_job(suite: Suite) -> AssetJob | None:
    """A sharded suite's aggregation of one model (its metrics over all shards, and whatever else is partitioned
    by model alone); None for a suite of one shard, whose eval job aggregates."""
    if suite.shards == 1:
        return None
    return dg.define_asset_job(
        name=aggregate_job_name(suite),
        selection=_aggregate_selection(suite),
        partitions_def=model_partitions(suite),
        description=f"Aggregate every shard of one model of suite {suite.suite} into its metrics.",
        tags=suite_run_tags(suite.suite),
    )


def suite_compare_job(suite: Suite) -> AssetJob | None:
    """Every evaluated model against the baseline (None when the suite has no baseline)."""
    if suite.baseline is None:
        return None
    return dg.define_asset_job(
        name=compare_job_name(suite),
        selection=dg.AssetSelection.assets(*_comparison_keys(suite)),
        description=f"Compare every evaluated model of {suite.suite} with {suite.baseline}, item by item.",
        tags=suite_run_tags(suite.suite),
    )
