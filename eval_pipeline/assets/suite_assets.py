"""All assets of one suite, from its spec."""

import dagster as dg

from eval_pipeline.assets.generations import build_generations_asset
from eval_pipeline.assets.metrics import build_metrics_asset
from eval_pipeline.assets.partitions import model_partitions
from eval_pipeline.assets.samples import build_samples_asset
from eval_pipeline.assets.scores import build_scores_asset
from eval_pipeline.suites.spec import Suite

STAGES = ("samples", "generations", "scores", "metrics")


def build_suite_assets(suite: Suite) -> list[dg.AssetsDefinition]:
    partitions = model_partitions(suite)
    return [
        build_samples_asset(suite),
        build_generations_asset(suite, partitions),
        build_scores_asset(suite, partitions),
        build_metrics_asset(suite, partitions),
    ]
