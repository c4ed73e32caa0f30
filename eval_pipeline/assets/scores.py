"""The ``[suite, scores]`` asset: the task kind's deterministic scoring of each model's produced outputs."""

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import preview
from eval_pipeline.progress import Progress, reporting
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tasks.stage_versions import stage_version


def build_scores_asset(suite: Suite, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    kind = task_kind(suite)
    produced_stage = kind.production_stage

    @dg.asset(key=[suite.suite, "scores"], group_name=suite.suite, partitions_def=partitions, kinds={"parquet"},
              code_version=stage_version(suite, "scores"),
              ins={"samples": dg.AssetIn(key=[suite.suite, "samples"]),
                   produced_stage: dg.AssetIn(key=[suite.suite, produced_stage])},
              description="One row per generation × scorer.")
    def scores(context: dg.AssetExecutionContext, samples: pd.DataFrame,
               **produced: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        progress = Progress(f"{suite.suite}/{context.partition_key} verification", context.log.info, unit="check")
        with progress, reporting(progress):  # scorers that run code (or evaluate traces) report through it
            frame = kind.score(suite, samples, produced[produced_stage])
        return dg.Output(frame, metadata={
            "errors": int(frame["error"].notna().sum()),
            "preview": preview(frame, ["sample_id", "sample_index", "scorer", "score", "error"]),
        })

    return scores
