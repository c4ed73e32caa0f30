"""What a finished (or stopped) batch-evaluation job leaves behind: Parquet tables in its folder
(``<home>/batch_evaluations/<id>/``), one MLflow run with the sessions as MLflow traces and the results as their
assessments, and, when ``outputConfig.cloudWatchConfig`` asks for it, result events in CloudWatch Logs.

Files in the job's folder: ``traces.parquet`` (TRACES), ``results.parquet`` (TRACE_EVALUATIONS), ``summary.parquet``
(one row per evaluator: the service's summary fields beside the mean, its interval and how it was computed),
``metrics.parquet`` (METRICS rows), ``calibration.parquet`` (with a managed run) and ``outputs.json`` (the MLflow
run id and how many result events were written).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from eval_pipeline.data.schemas import METRICS, TRACE_EVALUATIONS, TRACES, conform
from eval_pipeline.traces.service_shapes import missing

OUTPUTS_FILE = "outputs.json"
EXPERIMENT_PREFIX = "agentcore-batch/"
RESULTS_ARTIFACT = "results.json"
CALIBRATION_ARTIFACT = "calibration.json"


def write_table(folder: Path, name: str, frame: pd.DataFrame, schema=None) -> Path:
    """``<folder>/<name>.parquet`` (conformed to ``schema`` when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    table = conform(frame, schema) if schema is not None else conform(frame, _schema_of(frame))
    pq.write_table(table, path)
    return path


def write_traces(folder: Path, traces: pd.DataFrame) -> Path:
    return write_table(folder, "traces", traces, TRACES)


def write_results(folder: Path, results: pd.DataFrame, summaries: list[dict[str, Any]],
                  metrics: pd.DataFrame | None) -> None:
    """``results.parquet``, ``summary.parquet`` and ``metrics.parquet``."""
    write_table(folder, "results", results, TRACE_EVALUATIONS)
    write_table(folder, "summary", summary_frame(summaries, metrics))
    write_table(folder, "metrics", metrics if metrics is not None else pd.DataFrame(), METRICS)


def summary_frame(summaries: list[dict[str, Any]], metrics: pd.DataFrame | None) -> pd.DataFrame:
    """One row per evaluator: ``evaluator_id``, ``average_score``, ``total_evaluated``, ``total_failed`` and, from
    the METRICS rows (metric = the evaluator id), ``stderr``, ``ci_low``, ``ci_high``, ``n``, ``ci_method``."""
    rows = []
    overall = {}
    if metrics is not None and not metrics.empty:
        for row in metrics.to_dict("records"):
            if missing(row.get("breakdown_key")):
                overall[str(row["metric"])] = row
    for summary in summaries:
        evaluator = summary.get("evaluatorId")
        stats = overall.get(str(evaluator), {})
        rows.append({"evaluator_id": evaluator,
                     "average_score": (summary.get("statistics") or {}).get("averageScore"),
                     "total_evaluated": summary.get("totalEvaluated"), "total_failed": summary.get("totalFailed"),
                     **{key: stats.get(key) for key in ("stderr", "ci_low", "ci_high", "n", "ci_method")}})
    columns = ["evaluator_id", "average_score", "total_evaluated", "total_failed", "stderr", "ci_low", "ci_high",
               "n", "ci_method"]
    return pd.DataFrame(rows, columns=columns)


def write_outputs_record(folder: Path, record: Mapping[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OUTPUTS_FILE).write_text(json.dumps(dict(record), indent=2, sort_keys=True))


def read_outputs_record(folder: Path) -> dict[str, Any]:
    path = folder / OUTPUTS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def experiment_name(job_name: str) -> str:
    return f"{EXPERIMENT_PREFIX}{job_name}"


def log_job_run(*, tracking_uri: str, job: Mapping[str, str], request: Mapping[str, Any], traces: pd.DataFrame,
                results: pd.DataFrame, metrics: pd.DataFrame | None, status: str,
                calibration: pd.DataFrame | None = None) -> str:
    """One MLflow run in experiment ``agentcore-batch/<name>``: params = the request, metrics = each evaluator's
    mean with its interval, ``results.json`` as a table, the sessions as MLflow traces with the results as
    assessments (``tracking.session_traces``); the run's id."""
    from mlflow.entities import Param, RunStatus, RunTag

    from eval_pipeline.tracking.mlflow_log import (
        ci_method_tags,
        flatten_params,
        log_metric_values,
        metric_values,
        open_experiment,
        sanitize_name,
        start_run,
    )

    client, experiment_id = open_experiment(tracking_uri, experiment_name(job["batchEvaluationName"]))
    tags = {"batchEvaluationId": job["batchEvaluationId"], "batchEvaluationArn": job["batchEvaluationArn"],
            "batchEvaluation.status": status}
    run_id = start_run(client, experiment_id, job["batchEvaluationName"], tags)
    try:
        params: dict[str, str] = {}
        for key, value in flatten_params(dict(request)).items():
            params[sanitize_name(key)] = value
        entries = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(entries), 100):
            client.log_batch(run_id, params=entries[start:start + 100], synchronous=True)
        frame = metrics if metrics is not None else pd.DataFrame()
        log_metric_values(client, run_id, *metric_values(frame))
        method_tags = [RunTag(key, value) for key, value in ci_method_tags(frame).items()]
        if method_tags:
            client.log_batch(run_id, tags=method_tags, synchronous=True)
        client.log_table(run_id, _jsonable(results), RESULTS_ARTIFACT)
        if calibration is not None:
            client.log_table(run_id, _jsonable(calibration), CALIBRATION_ARTIFACT)
        if not traces.empty:
            from eval_pipeline.tracking.session_traces import log_session_traces

            log_session_traces(traces, results, tracking_uri=tracking_uri, run_id=run_id)
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id


def write_cloudwatch_events(results: pd.DataFrame, output: Any, *, job: Mapping[str, str],
                            region: str | None = None) -> int:
    """Result events in the service's layout (``traces.result_events``); how many were written."""
    from eval_pipeline.traces.result_events import write_result_events

    client = None
    if region:
        import boto3

        client = boto3.client("logs", region_name=region)
    return int(write_result_events(results, output, job=job, client=client))


def remove_outputs(folder: Path, tracking_uri: str | None) -> None:
    """The job's folder and its MLflow run (deleted, as MLflow deletes: recoverable until garbage-collected)."""
    record = read_outputs_record(folder)
    run_id = record.get("mlflowRunId")
    if run_id and tracking_uri:
        from eval_pipeline.tracking.mlflow_log import tracking_client

        with contextlib.suppress(Exception):  # a run deleted by hand is gone already
            tracking_client(tracking_uri).delete_run(run_id)
    shutil.rmtree(folder, ignore_errors=True)


def _schema_of(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Schema.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def _jsonable(frame: pd.DataFrame) -> pd.DataFrame:
    """Nulls as None, so MLflow's table JSON holds no NaN."""
    frame = frame.reset_index(drop=True).astype(object)
    return frame.where(frame.notna(), None)
