"""The partitions of a suite: models (dynamic, so sensors can add new checkpoints), and model × shard for the
per-item stages of a suite split into shards."""

from __future__ import annotations

import warnings

import dagster as dg
import pandas as pd

from eval_pipeline.data.shards import concat_shards
from eval_pipeline.suites.spec import Suite


def model_partitions(suite: Suite) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{suite.suite}_models")


def register_declared_models(instance: dg.DagsterInstance, suite: Suite) -> list[str]:
    """Add the suite's declared models as partitions; returns those that were new."""
    name = model_partitions(suite).name
    existing = set(instance.get_dynamic_partitions(name))
    new = [m.name for m in suite.models if m.name not in existing]
    add_partitions(instance, name, new)
    return new


def add_partitions(instance: dg.DagsterInstance, partitions_name: str, keys: list[str]) -> None:
    """Add dynamic partitions, tolerating another process adding the same keys at the same moment (Dagster reads
    then inserts, so two processes can both find a key missing; the loser's insert hits the unique index)."""
    from sqlalchemy.exc import IntegrityError

    for _attempt in range(3):
        missing = [k for k in keys if not instance.has_dynamic_partition(partitions_name, k)]
        if not missing:
            return
        try:
            instance.add_dynamic_partitions(partitions_name, missing)
            return
        except IntegrityError:
            continue  # another process added some of them: read again
    raise RuntimeError(f"could not register partitions {keys} of {partitions_name}")


MODEL_DIMENSION = "model"
SHARD_DIMENSION = "shard"


def stage_partitions(suite: Suite) -> dg.PartitionsDefinition:
    """The partitions of the per-item stages (production, scores, judgments): the model partitions when the suite
    has one shard, else model × shard (dimensions ``model``, the dynamic model partitions, and ``shard``, "0" ..
    "n-1"; Dagster writes a key as ``<model>|<shard>``)."""
    if suite.shards == 1:
        return model_partitions(suite)
    return dg.MultiPartitionsDefinition({
        MODEL_DIMENSION: model_partitions(suite),
        SHARD_DIMENSION: dg.StaticPartitionsDefinition([str(shard) for shard in range(suite.shards)]),
    })


def partition_model(key: str) -> str:
    """The model of a partition key, model or model × shard (``smollm2``, ``smollm2|0``)."""
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension[MODEL_DIMENSION]
    return key.split("|", 1)[0]  # a model name has no "|" (MODEL_NAME_PATTERN); the model dimension sorts first


def partition_shard(key: str) -> int | None:
    """The shard of a model × shard partition key; None for a model's key."""
    if isinstance(key, dg.MultiPartitionKey):
        return int(key.keys_by_dimension[SHARD_DIMENSION])
    _model, bar, shard = key.partition("|")
    return int(shard) if bar else None


def shard_keys(suite: Suite, model: str) -> list[str]:
    """The partition keys of one model in the per-item stages, in shard order: ``[model]`` unsharded."""
    if suite.shards == 1:
        return [model]
    return [dg.MultiPartitionKey({MODEL_DIMENSION: model, SHARD_DIMENSION: str(shard)})
            for shard in range(suite.shards)]


def shard_mapping(suite: Suite) -> dict[str, object]:
    """``AssetIn`` arguments of a model-partitioned asset reading a per-item stage: every shard of its model."""
    if suite.shards == 1:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # MultiToSingleDimensionPartitionMapping: beta in 1.13
        mapping = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=MODEL_DIMENSION)
    return {"partition_mapping": mapping}


def tables_by_model(tables: dict[str, pd.DataFrame] | pd.DataFrame,
                    samples: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tables keyed by partition key (an ``AllPartitionMapping`` input) as one table per model: a model's shards
    concatenated in the items' order (``concat_shards``); unsharded tables as they are. Where a single partition
    exists Dagster passes its table itself: it is filed under the model its rows name."""
    if isinstance(tables, pd.DataFrame):
        models = tables["model"].dropna().unique() if "model" in tables.columns else []
        return {str(models[0]): tables} if len(models) == 1 else {}
    grouped: dict[str, dict[str, pd.DataFrame]] = {}
    for key, frame in tables.items():
        grouped.setdefault(partition_model(key), {})[key] = frame
    return {model: model_table(shards if partition_shard(next(iter(shards))) is not None else shards[model], samples)
            for model, shards in grouped.items()}


def model_table(tables: pd.DataFrame | dict[str, pd.DataFrame], samples: pd.DataFrame) -> pd.DataFrame:
    """One model's table of a per-item stage: as loaded when unsharded, its shards (a dict by partition key, as the
    model × shard mapping loads them) concatenated in the items' order when sharded."""
    if isinstance(tables, pd.DataFrame):
        return tables
    ordered = sorted(tables.items(), key=lambda item: partition_shard(item[0]) or 0)
    return concat_shards([frame for _key, frame in ordered], samples)


def aggregation_condition(suite: Suite) -> dg.AutomationCondition | None:
    """When Dagster aggregates a model of a sharded suite by itself: eagerly, once every shard of the model is
    materialized and none is in progress (a backfill or a sensor launches the shards; the automation sensor then
    runs the model's metrics once). None unsharded: the metrics run in the same run as the model's stages."""
    return dg.AutomationCondition.eager() if suite.shards > 1 else None
