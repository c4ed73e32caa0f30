"""All assets of one suite, from its spec."""

import dagster as dg

from eval_pipeline.assets.comparison import build_comparison_asset, comparison_stages
from eval_pipeline.assets.generations import build_generations_asset
from eval_pipeline.assets.judgments import build_judgments_asset
from eval_pipeline.assets.metrics import build_metrics_asset
from eval_pipeline.assets.partitions import model_partitions, stage_partitions
from eval_pipeline.assets.promote import build_promotion_asset
from eval_pipeline.assets.release_gate import build_release_gate_check
from eval_pipeline.assets.samples import build_samples_asset
from eval_pipeline.assets.scores import build_scores_asset
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind

STAGES = ("samples", "generations", "scores", "metrics")
"""The stages of a ``generate`` suite; a judge adds ``judgments``, a baseline adds ``comparison`` (and
``pairwise``). Other task kinds name their own (``TaskKind.stages``)."""


def model_stages(suite: Suite) -> tuple[str, ...]:
    """The stages of one model partition, in order (the suite's task kind says which)."""
    return task_kind(suite).stages(suite)


def shard_stages(suite: Suite) -> tuple[str, ...]:
    """The per-item stages of one model (production, scores, judgments): partitioned by model × shard when the
    suite is split into shards; the first (samples) and last (metrics) stages are not."""
    return model_stages(suite)[1:-1]


def suite_comparison_stages(suite: Suite) -> tuple[str, ...]:
    """The unpartitioned stages that compare models (none without a baseline)."""
    return comparison_stages(suite) if suite.baseline else ()


def build_suite_assets(suite: Suite) -> list[dg.AssetsDefinition]:
    partitions, per_item = model_partitions(suite), stage_partitions(suite)
    assets = [
        build_samples_asset(suite),
        build_generations_asset(suite, per_item),
        build_scores_asset(suite, per_item),
        build_metrics_asset(suite, partitions),
    ]
    if suite.judge is not None:
        assets.append(build_judgments_asset(suite, per_item))
    if suite.baseline is not None:
        assets.append(build_comparison_asset(suite))
    if suite.promote is not None:
        assets.append(build_promotion_asset(suite))
    return assets


def build_suite_checks(suite: Suite) -> list[dg.AssetChecksDefinition]:
    """The suite's asset checks defined beside its assets: the blocking ``release_gate`` when it has ``gates``."""
    return [build_release_gate_check(suite)] if suite.gates is not None else []
