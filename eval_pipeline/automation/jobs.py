"""The per-suite jobs: every stage of one model partition, and the comparison of all models with the baseline."""

from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions
from eval_pipeline.assets.run_tags import suite_run_tags
from eval_pipeline.assets.suite_assets import suite_comparison_stages
from eval_pipeline.suites.spec import Suite

AssetJob = Any
"""What ``define_asset_job`` returns (its class is not part of Dagster's public API)."""


def eval_job_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_eval"


def compare_job_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_compare"


def _comparison_keys(suite: Suite) -> list[dg.AssetKey]:
    return [dg.AssetKey([suite.suite, stage]) for stage in suite_comparison_stages(suite)]


def suite_eval_job(suite: Suite) -> AssetJob:
    return dg.define_asset_job(
        name=eval_job_name(suite),
        selection=dg.AssetSelection.groups(suite.suite) - dg.AssetSelection.assets(*_comparison_keys(suite)),
        partitions_def=model_partitions(suite),
        description=f"Evaluate one model partition of suite {suite.suite}: samples → generations → scores "
                    f"{'→ judgments ' if suite.judge else ''}→ metrics.",
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
