"""Dagster resources: the Parquet IO manager, the generation cache and MLflow tracking."""

from eval_pipeline.resources.generation_cache import GenerationCacheResource
from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
from eval_pipeline.resources.parquet_io import ParquetIOManager

__all__ = ["GenerationCacheResource", "MlflowTrackingResource", "ParquetIOManager"]
