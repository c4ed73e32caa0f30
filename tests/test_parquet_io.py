"""The Parquet IO manager, on local disk and on S3 (a moto server on 127.0.0.1, through s3fs and botocore)."""

from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from eval_pipeline.data.schemas import GENERATIONS
from eval_pipeline.resources.parquet_io import ParquetIOManager

MODELS = dg.DynamicPartitionsDefinition(name="demo_models")


@dg.asset(key=["demo", "samples"])
def samples() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": ["a", "b"], "input": ["x", "y"]})


@dg.asset(key=["demo", "generations"], partitions_def=MODELS, ins={"samples": dg.AssetIn(key=["demo", "samples"])})
def generations(context: dg.AssetExecutionContext, samples: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": samples["sample_id"], "model": context.partition_key, "sample_index": 0,
                         "output": ["1", "2"], "extra_column": [True, False]})


def materialize_both(io_manager: ParquetIOManager, instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions("demo_models", ["m-1"])
    assert dg.materialize([samples], instance=instance, resources={"io_manager": io_manager}).success
    result = dg.materialize([samples, generations], selection=[generations], instance=instance,
                            partition_key="m-1", resources={"io_manager": io_manager})
    assert result.success
    metadata = result.asset_materializations_for_node("demo__generations")[0].metadata
    assert metadata["row_count"].value == 2


def test_local_layout_and_canonical_schema(tmp_path: Path) -> None:
    io_manager = ParquetIOManager(base_path=str(tmp_path / "out"))
    materialize_both(io_manager, dg.DagsterInstance.ephemeral())
    path = Path(io_manager.path_for(["demo", "generations"], "m-1"))
    assert path == tmp_path / "out" / "demo" / "generations" / "m-1.parquet"
    assert Path(io_manager.path_for(["demo", "samples"])) == tmp_path / "out" / "demo" / "samples.parquet"
    table = pq.read_table(path)
    assert table.schema.names == [*GENERATIONS.names, "extra_column"]  # canonical first, extras kept
    assert table.column("request_hash").null_count == 2
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left nothing behind


@pytest.fixture
def s3_bucket(aws_env: str) -> str:
    boto3.client("s3").create_bucket(Bucket="eval-outputs")
    return "eval-outputs"


def test_s3_outputs(s3_bucket: str) -> None:
    io_manager = ParquetIOManager(base_path=f"s3://{s3_bucket}/runs")
    materialize_both(io_manager, dg.DagsterInstance.ephemeral())
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert keys == {"runs/demo/samples.parquet", "runs/demo/generations/m-1.parquet"}
    assert io_manager.path_for(["demo", "generations"], "m-1") == f"s3://{s3_bucket}/runs/demo/generations/m-1.parquet"
