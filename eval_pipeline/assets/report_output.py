"""The suite report written by a Dagster step: beside the suite's tables, added to the step's MLflow run as
``report.html``, and linked from the materialization's metadata (``report``).

A step writes the report before Dagster stores its own table (the materialization that links the report is the
one that stores it), so the reader the report gets answers this step's tables from memory: ``PendingTables``.
A report that cannot be written or logged is a warning naming why, never a failed step: the numbers are stored.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eval_pipeline.data.schemas import BY_STAGE, conform
from eval_pipeline.metrics.gates import GateResult
from eval_pipeline.report import RunInfo, write_suite_report
from eval_pipeline.report.write import REPORT_FILE
from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
from eval_pipeline.resources.parquet_io import ParquetIOManager
from eval_pipeline.suites.spec import Suite

REPORT_KEY = "report"
"""The materialization's metadata entry: the report's path (a local file) or URL (``s3://…``)."""

PendingKey = tuple[tuple[str, ...], str | None]
"""(asset key, partition or model) of a table not stored yet."""


class PendingTables:
    """A ``TableReader`` over the stored tables with this step's own tables, not stored yet, put in:
    ``read_model_stage`` answers them from memory, ``path_for`` with a Parquet file in ``scratch`` (written on first
    ask). Each is the table Dagster will store: conformed to its stage's schema as the IO manager conforms it."""

    def __init__(self, stored: ParquetIOManager, pending: Mapping[PendingKey, pd.DataFrame], scratch: Path) -> None:
        self.stored = stored
        self.pending = {key: _stored_form(frame, key[0][-1]) for key, frame in pending.items()}
        self.scratch = scratch

    def path_for(self, asset_key: list[str], partition: str | None = None) -> str:
        key = (tuple(asset_key), partition)
        table = self.pending.get(key)
        if table is None:
            return self.stored.path_for(asset_key, partition)
        path = self.scratch / ("__".join([*asset_key, partition or ""]) + ".parquet")
        if not path.exists():
            pq.write_table(table, str(path))
        return str(path)

    def read_model_stage(self, asset_key: list[str], model: str) -> pd.DataFrame | None:
        table = self.pending.get((tuple(asset_key), model))
        return table.to_pandas() if table is not None else self.stored.read_model_stage(asset_key, model)


def _stored_form(frame: pd.DataFrame, stage: str) -> pa.Table:
    schema = BY_STAGE.get(stage)
    return conform(frame, schema) if schema is not None else pa.Table.from_pandas(frame, preserve_index=False)


def stored_tables(io_manager: object) -> ParquetIOManager | None:
    """The run's Parquet outputs as a reader of the suite's tables (``path_for``, ``read_model_stage``), from the IO
    manager Dagster hands a step (None when the run's io_manager is not the Parquet one)."""
    if isinstance(io_manager, ParquetIOManager):
        return io_manager
    root = getattr(io_manager, "root", None)
    return None if root is None else ParquetIOManager(base_path=str(root))


def run_info(dagster_run_id: str | None, mlflow_run_id: str | None, gates: Sequence[GateResult],
             judge_warnings: Sequence[tuple[str, str]]) -> RunInfo:
    """What the report shows of a model's run besides its tables: the runs, the gates' verdicts and the judge
    warnings (metric, reason)."""
    return RunInfo(dagster_run_id=dagster_run_id, mlflow_run_id=mlflow_run_id or None,
                   gates=[gate.as_dict() for gate in gates],
                   judge_warnings=[{"metric": metric, "reason": reason} for metric, reason in judge_warnings])


def stored_run_infos(instance: dg.DagsterInstance, suite: Suite, models: Sequence[str]) -> dict[str, RunInfo]:
    """The Dagster and MLflow runs of each model's latest metrics materialization (its gates and warnings are in
    its own report and asset checks)."""
    infos = {}
    key = dg.AssetKey([suite.suite, "metrics"])
    for model in models:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[model]),
                                                  limit=1).records
        if not records or records[0].asset_materialization is None:
            continue
        value = records[0].asset_materialization.metadata.get("mlflow_run_id")
        infos[model] = RunInfo(dagster_run_id=records[0].run_id,
                               mlflow_run_id=str(getattr(value, "value", value) or "") or None)
    return infos


def write_step_report(log: Any, suite: Suite, io_manager: object, mlflow: MlflowTrackingResource, *,
                      mlflow_run_id: str | None, pending: Mapping[PendingKey, pd.DataFrame],
                      models: Sequence[str] | None = None,
                      runs: Mapping[str, RunInfo] | None = None) -> dict[str, dg.MetadataValue]:
    """Write the suite's report (``models``, ``runs``; this step's ``pending`` tables included), add it to the MLflow
    run ``mlflow_run_id`` as ``report.html``, and return the ``report`` metadata entry. A failure is logged on
    ``log`` as a warning with its reason; the entry is left out when no report was written."""
    stored = stored_tables(io_manager)
    if stored is None:
        log.warning(f"the report of {suite.suite} was not written: the run's io_manager "
                    f"({type(io_manager).__name__}) does not store Parquet tables")
        return {}
    with tempfile.TemporaryDirectory(prefix="eval-report-") as scratch:
        try:
            path = write_suite_report(suite, PendingTables(stored, pending, Path(scratch)), models=models, runs=runs)
        except Exception as exc:  # the numbers are stored; a page that failed is a warning
            log.warning(f"the report of {suite.suite} was not written: {type(exc).__name__}: {exc}")
            return {}
        if mlflow_run_id:
            try:
                log_report(mlflow, mlflow_run_id, path, Path(scratch))
            except Exception as exc:  # the report is on disk; the run only lacks its copy
                log.warning(f"the report {path} was not added to MLflow run {mlflow_run_id}: "
                            f"{type(exc).__name__}: {exc}")
    return {REPORT_KEY: report_metadata(path)}


def log_report(mlflow: MlflowTrackingResource, run_id: str, path: str, scratch: Path) -> None:
    """The report as the run's ``report.html`` artifact; a report on S3 is downloaded to ``scratch`` first."""
    if not is_remote(path):
        mlflow.log_artifact(run_id, path.removeprefix("file://"))
        return
    from upath import UPath

    local = scratch / "download" / REPORT_FILE
    local.parent.mkdir(exist_ok=True)
    local.write_bytes(UPath(path).read_bytes())
    mlflow.log_artifact(run_id, str(local))


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def report_metadata(path: str) -> dg.MetadataValue:
    """A local report as a path the UI shows; one on S3 as its URL."""
    return dg.MetadataValue.url(path) if is_remote(path) else dg.MetadataValue.path(path.removeprefix("file://"))
