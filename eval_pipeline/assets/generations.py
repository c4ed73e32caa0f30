"""The production asset (``[suite, generations]``): the suite's task kind runs the models, one partition per model
(per model × shard when the suite is split into shards: each runs its shard's items)."""

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import preview, rounded_usage
from eval_pipeline.assets.partitions import partition_model, partition_shard
from eval_pipeline.assets.run_tags import tag_run
from eval_pipeline.data.shards import shard_rows
from eval_pipeline.resources.generation_cache import GenerationCacheResource
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tasks.stage_versions import stage_version


def inference_pool(suite: Suite) -> str:
    """The Dagster pool of a suite's production step, as its task kind names it: one per backend for generations
    (``inference-bedrock``), one per environment kind for rollouts (``rollouts-agentcore``), so concurrent runs and
    backfills that call the same service share one limit (``dagster instance concurrency set inference-bedrock 2``)."""
    return task_kind(suite).pool(suite)


def build_generations_asset(suite: Suite, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    kind = task_kind(suite)

    @dg.asset(key=[suite.suite, kind.production_stage], group_name=suite.suite, partitions_def=partitions,
              code_version=stage_version(suite, kind.production_stage),
              pool=inference_pool(suite),
              ins={"samples": dg.AssetIn(key=[suite.suite, "samples"])}, kinds={"parquet"},
              description="One row per sample × model × sample index: output, tokens, latency, errors.")
    def generations(context: dg.AssetExecutionContext, samples: pd.DataFrame,
                    generation_cache: GenerationCacheResource) -> dg.Output[pd.DataFrame]:
        model = suite.model(partition_model(context.partition_key))
        tag_run(context, suite.suite)  # a UI launch is found by its suite/model tags while it generates
        shard = partition_shard(context.partition_key)
        if shard is not None:  # a suite split into shards: this partition's items only
            samples = shard_rows(samples, shard, suite.shards)
            context.log.info(f"shard {shard} of {suite.shards}: {len(samples)} items")
        cache = generation_cache.open()
        try:
            produced = kind.produce(suite, model, samples, cache, context.log.info)
        finally:
            if cache is not None:
                cache.close()
        context.log.info(produced.summary)
        return dg.Output(produced.frame, metadata={  # the preview: each output beside its prompt and reference
            **rounded_usage(produced.metadata), "preview": preview(produced.frame, produced.preview_columns, samples)})

    return generations
