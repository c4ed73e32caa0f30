"""Parquet IO manager: ``<base>/<suite>/<stage>/<partition>.parquet`` on local disk or S3, canonical schemas."""

from __future__ import annotations

import os
import uuid
from typing import Any, Protocol, runtime_checkable

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from eval_pipeline.data.schemas import BY_STAGE, conform
from eval_pipeline.resources.table_metadata import column_schema_metadata

EXACT_INTEGER_STAGES = frozenset({"traces"})
"""Stages read with nullable integers: their nanosecond times would lose digits as float64."""


@runtime_checkable
class StageReader(Protocol):
    """Reads one model's stored table of a stage, all shards: the ``ParquetIOManager`` factory and the manager it
    creates (which Dagster hands to assets and checks) both do, through one implementation."""

    def model_stage_paths(self, asset_key: list[str], model: str) -> list[str]: ...

    def read_model_stage(self, asset_key: list[str], model: str) -> pd.DataFrame | None: ...


class _ParquetUPathIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def __init__(self, base_path: UPath) -> None:
        super().__init__(base_path=base_path)
        self.root = base_path
        """Where the stages are stored (a folder or an ``s3://`` prefix)."""

    def model_stage_paths(self, asset_key: list[str], model: str) -> list[str]:
        """Every file of one model's partition of a stage (``model_stage_paths``)."""
        return model_stage_paths(self.root, asset_key, model)

    def read_model_stage(self, asset_key: list[str], model: str) -> pd.DataFrame | None:
        """One model's table of a stage, all shards (``read_model_stage``); None when never materialized."""
        return read_model_stage(self.root, asset_key, model)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        table = _as_table(obj, context.asset_key.path[-1])
        if path.protocol in ("", "file"):
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            pq.write_table(table, str(temporary))
            os.replace(str(temporary), str(path))  # atomic: concurrent runs never see half a file
        else:
            with path.open("wb") as handle:
                pq.write_table(table, handle)
        # the canonical schema of the stage (BY_STAGE), then any extra columns: what the file holds
        context.add_output_metadata({"row_count": table.num_rows, **column_schema_metadata(table.schema)})

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        with path.open("rb") as handle:
            table = pq.read_table(handle)
        if context.asset_key.path[-1] in EXACT_INTEGER_STAGES:
            return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        return table.to_pandas()


def forget_listings(folder: UPath) -> None:
    """Drop the filesystem's cached listings of ``folder`` and its parents (s3fs keeps them for the life of the
    process)."""
    invalidate = getattr(getattr(folder, "fs", None), "invalidate_cache", None)
    if invalidate is not None:
        invalidate(folder.path)


def _as_table(obj: Any, stage: str) -> pa.Table:
    if isinstance(obj, pa.Table):
        return obj
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(f"the Parquet IO manager stores DataFrames or Arrow tables, got {type(obj).__name__}")
    schema = BY_STAGE.get(stage)
    return conform(obj, schema) if schema is not None else pa.Table.from_pandas(obj, preserve_index=False)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores each stage's table as Parquet under ``base_path`` (a folder or an ``s3://`` prefix)."""

    base_path: str

    def create_io_manager(self, context: dg.InitResourceContext) -> _ParquetUPathIOManager:
        return _ParquetUPathIOManager(base_path=UPath(self.base_path))

    def path_for(self, asset_key: list[str], partition: str | None = None) -> str:
        """Where an asset's table (or one partition of it) lives."""
        path = UPath(self.base_path).joinpath(*asset_key)
        return str(path / f"{partition}.parquet" if partition is not None else path.with_suffix(".parquet"))

    def model_stage_paths(self, asset_key: list[str], model: str) -> list[str]:
        """Every file of one model's partition of a stage (``model_stage_paths``)."""
        return model_stage_paths(UPath(self.base_path), asset_key, model)

    def read_model_stage(self, asset_key: list[str], model: str) -> pd.DataFrame | None:
        """One model's table of a stage, all shards (``read_model_stage``); None when never materialized."""
        return read_model_stage(UPath(self.base_path), asset_key, model)


def model_stage_paths(base: UPath, asset_key: list[str], model: str) -> list[str]:
    """Every file of one model's partition of a stage under ``base``: ``<model>.parquet``, or one
    ``<model>/<shard>.parquet`` per shard when the suite is split into shards (Dagster writes a model × shard key
    as ``model/shard``)."""
    folder = base.joinpath(*asset_key)
    forget_listings(folder / model)  # another worker (machine) may have written a shard since we last looked
    whole = folder / f"{model}.parquet"
    if whole.exists():
        return [str(whole)]
    shards = folder / model
    if not shards.is_dir():
        return []
    return [str(path) for path in sorted(shards.glob("*.parquet"), key=lambda p: int(p.stem))]


def read_model_stage(base: UPath, asset_key: list[str], model: str) -> pd.DataFrame | None:
    """One model's table of a stage under ``base``, all shards concatenated in shard order; None when never
    materialized."""
    paths = model_stage_paths(base, asset_key, model)
    if not paths:
        return None
    frames = []
    for path in paths:
        with UPath(path).open("rb") as handle:
            frames.append(pq.read_table(handle).to_pandas())
    return pd.concat(frames, ignore_index=True)
