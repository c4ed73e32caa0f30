"""The per-suite evaluation job: every stage of one model partition."""

from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions
from eval_pipeline.suites.spec import Suite

AssetJob = Any
"""What ``define_asset_job`` returns (its class is not part of Dagster's public API)."""


def eval_job_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_eval"


def suite_eval_job(suite: Suite) -> AssetJob:
    return dg.define_asset_job(
        name=eval_job_name(suite),
        selection=dg.AssetSelection.groups(suite.suite),
        partitions_def=model_partitions(suite),
        description=f"Evaluate one model partition of suite {suite.suite}: samples → generations → scores → metrics.",
        tags={"eval/suite": suite.suite},
    )
