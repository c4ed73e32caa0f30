"""Best-effort upload of one training-loop evaluation: an MLflow run, a Parquet file, or a ``store.log(record)``.

A failure is logged as a warning (and kept in ``run.upload_error``), never raised: a dashboard hiccup must not
kill training. What is uploaded is described by two small protocols (``UploadSource``: the evaluator's settings;
``UploadRun``: one evaluation's tables), so this module never imports the evaluator that calls it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from eval_pipeline.evaluations.metric_registry import RegisteredMetric
from eval_pipeline.scoring.items import item_table
from eval_pipeline.tracking.mlflow_log import EvaluationRecord, log_evaluation, sanitize_name, tracking_client

logger = logging.getLogger(__name__)

_URI_SCHEMES = re.compile(r"^(sqlite|databricks|postgresql|mysql|mssql)([+:]|$)")


class UploadedBenchmark(Protocol):
    """The benchmark's fields recorded as parameters."""

    @property
    def dataset(self) -> str | Path: ...
    @property
    def format(self) -> str: ...
    @property
    def reward(self) -> str: ...
    @property
    def scorers(self) -> Any: ...
    @property
    def success_threshold(self) -> float: ...


class UploadSource(Protocol):
    """What the upload reads from the evaluator (``BenchmarkEvaluator`` is one): where to, and the settings to
    record beside the metrics."""

    @property
    def name(self) -> str: ...
    @property
    def store(self) -> Any: ...
    @property
    def benchmark(self) -> UploadedBenchmark: ...
    @property
    def benchmark_id(self) -> str | None: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def num_samples(self) -> int: ...
    @property
    def chat_template(self) -> dict[str, Any]: ...
    def generation_params(self) -> Any: ...


class UploadRun(Protocol):
    """One evaluation's tables and metric dict (``BenchmarkRun`` is one); the upload sets ``uploaded_to`` or
    ``upload_error``."""

    step: int | None
    samples: pd.DataFrame
    generations: pd.DataFrame
    scores: pd.DataFrame
    metrics: pd.DataFrame
    values: dict[str, float]
    uploaded_to: str | None
    upload_error: str | None


RecordBuilder = Callable[[UploadSource, UploadRun, str, "str | None", list[RegisteredMetric]], EvaluationRecord]
"""How an upload turns an evaluation into the pipeline's record (``evaluation_record``; the harbor engine's)."""


def store_kind(store: Any) -> str:
    """``object`` (has ``log``), ``mlflow`` (a tracking URI) or ``folder`` (a local path for Parquet)."""
    if callable(getattr(store, "log", None)):
        return "object"
    if isinstance(store, str | Path):
        text = str(store)
        return "mlflow" if "://" in text or _URI_SCHEMES.match(text) else "folder"
    raise TypeError(f"store must be a tracking URI, a folder or an object with log(), got {type(store).__name__}")


def upload(evaluator: UploadSource, run: UploadRun, model: str, model_path: str | None,
           metrics: list[RegisteredMetric], *, record_for: RecordBuilder | None = None) -> None:
    """Record the evaluation in ``evaluator.store`` as ``record_for`` builds it (default ``evaluation_record``);
    sets ``run.uploaded_to`` or ``run.upload_error``: a failure is logged, never raised."""
    try:
        kind = store_kind(evaluator.store)
        record = (record_for or evaluation_record)(evaluator, run, model, model_path, metrics)
        if kind == "folder":
            run.uploaded_to = write_parquet(Path(evaluator.store), evaluator.name, run, record)
        elif kind == "mlflow":
            run.uploaded_to = log_to_mlflow(str(evaluator.store), evaluator, run, record)
        else:
            log = evaluator.store.log
            takes_step = "step" in inspect.signature(log).parameters
            result = log(record, step=run.step) if takes_step else log(record)
            run.uploaded_to = str(result) if result is not None else type(evaluator.store).__name__
    except Exception as exc:
        run.upload_error = f"{type(exc).__name__}: {exc}"
        logger.warning("%s: uploading the evaluation at step %s failed (training goes on): %s", evaluator.name,
                       run.step, run.upload_error, exc_info=True)


def evaluation_record(evaluator: UploadSource, run: UploadRun, model: str, model_path: str | None,
                      metrics: list[RegisteredMetric]) -> EvaluationRecord:
    """The eval as the pipeline's MLflow record: params (the step among them), per-item rows, METRICS table."""
    from eval_pipeline.inference.runner import generation_usage

    benchmark = evaluator.benchmark
    params = {
        "step": run.step, "model_path": model_path, "limit": evaluator.limit, "metrics": [m.name for m in metrics],
        "benchmark": {"dataset": benchmark.dataset, "format": benchmark.format, "reward": benchmark.reward,
                      "scorers": [s.name for s in benchmark.scorers], "success_threshold": benchmark.success_threshold,
                      "benchmark_id": evaluator.benchmark_id},
        "generation": {**evaluator.generation_params().__dict__, "num_samples": evaluator.num_samples},
        "chat_template": evaluator.chat_template,
    }
    tags = {"evaluator": evaluator.name, "step": "" if run.step is None else str(run.step)}
    if evaluator.benchmark_id:
        tags["benchmark_id"] = evaluator.benchmark_id
    if evaluator.run_id:
        tags["mlflow.parentRunId"] = evaluator.run_id
    items = item_table(run.samples, run.generations, run.scores).assign(step=run.step)
    digest = hashlib.sha256("".join(run.samples["row_hash"]).encode()).hexdigest()[:16]
    return EvaluationRecord(suite=evaluator.name, model=model, params=params, dataset_uri=str(benchmark.dataset),
                            dataset_digest=digest, samples=run.samples, items=items, metrics=run.metrics, tags=tags,
                            usage=generation_usage(run.generations))


def write_parquet(folder: Path, name: str, run: UploadRun, record: EvaluationRecord) -> str:
    """``<folder>/<name>/step-<step>.parquet`` with the per-item rows, and the metric dict beside it as JSON."""
    target = folder / _safe(name)
    target.mkdir(parents=True, exist_ok=True)
    stem = f"step-{run.step:08d}" if run.step is not None else datetime.now(UTC).strftime("eval-%Y%m%dT%H%M%S%fZ")
    path = target / f"{stem}.parquet"
    record.items.assign(evaluator=name).to_parquet(path, index=False)
    (target / f"{stem}.metrics.json").write_text(json.dumps(
        {"step": run.step, "model": record.model, "metrics": {k: _json_number(v) for k, v in run.values.items()}},
        indent=2, sort_keys=True))
    return str(path)


def log_to_mlflow(tracking_uri: str, evaluator: UploadSource, run: UploadRun,
                  record: EvaluationRecord) -> str:
    """One MLflow run per eval (nested under ``run_id`` when given, in its experiment) with the metric dict
    logged at the step, which also goes to the training run ``run_id`` as ``<name>/<metric>``."""
    from mlflow.entities import Metric

    experiment = None
    if evaluator.run_id:  # the training run exists, so its store is set up: a plain client will do
        client = tracking_client(tracking_uri)
        experiment = client.get_experiment(client.get_run(evaluator.run_id).info.experiment_id).name
    eval_run = log_evaluation(record, tracking_uri=tracking_uri, experiment_name=experiment)
    client = tracking_client(tracking_uri)
    step, now = run.step or 0, int(time.time() * 1000)
    finite = {k: float(v) for k, v in run.values.items() if not math.isnan(float(v))}
    client.log_batch(eval_run, metrics=[Metric(sanitize_name(k), v, now, step) for k, v in finite.items()],
                     synchronous=True)
    if evaluator.run_id:
        client.log_batch(evaluator.run_id, synchronous=True, metrics=[
            Metric(sanitize_name(f"{evaluator.name}/{k}"), v, now, step) for k, v in finite.items()])
    return eval_run


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "eval"


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


__all__ = ["UploadRun", "UploadSource", "store_kind", "upload"]
