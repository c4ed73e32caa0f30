"""Log one suite × model evaluation to MLflow: params, metrics, the dataset input, tables, plots and files.

Everything goes through an explicit ``MlflowClient`` bound to the given tracking URI, so no global MLflow
state (tracking URI, active run, experiment) is read or left behind. ``mlflow`` is imported lazily.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from eval_pipeline import paths
from eval_pipeline.file_lock import exclusive_lock
from eval_pipeline.process_identity import process_tags
from eval_pipeline.tracking.sagemaker_arn import arn_tracking_scope

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

DAGSTER_RUN_ID_TAG = "dagster.run_id"
GATE_FAILED_TAG = "gate.failed"
DATASET_CONTEXT = "evaluation"
ITEMS_ARTIFACT = "items.json"
METRICS_TABLE_ARTIFACT = "metrics.json"
METRICS_CSV_ARTIFACT = "metrics.csv"
PLOT_ARTIFACT = "metrics_by_breakdown.svg"

# MLflow's limits (mlflow.utils.validation); repeated here so that importing this module stays cheap.
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_DATASET_DIGEST_LENGTH = 36
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

_TAG_ALIASES = {"dagster_run_id": DAGSTER_RUN_ID_TAG}
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""Our experiments' kind (runs, not an app's traces): MLflow UIs that lay an experiment out by its kind open it on
its runs. MLflow 3.17's UI follows its GenAI / "Model training" switch instead (``run_links.experiment_page_url``)."""
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
NOTE_TAG = "mlflow.note.content"
USER_TAG = "mlflow.user"
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
_OVERALL_STATS = ("stderr", "ci_low", "ci_high", "n", "errors")


@dataclass
class EvaluationRecord:
    """What one suite × model evaluation logs to MLflow.

    ``samples`` is the samples table (the dataset input); ``items`` has one row per item × sample_index
    (sample_id, sample_index, input, reference, output, error and one column per scorer); ``metrics`` is the
    METRICS table. ``params`` may nest dicts (flattened to dotted keys). ``extra_artifacts`` maps a
    run-relative artifact path to a local file (or folder) to upload there.
    """

    suite: str
    model: str
    params: dict[str, Any]
    dataset_uri: str
    dataset_digest: str | None
    samples: pd.DataFrame
    items: pd.DataFrame
    metrics: pd.DataFrame
    tags: dict[str, str] = field(default_factory=dict)
    extra_artifacts: dict[str, Path] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    """Run-level figures logged as ``usage.<name>`` metrics: tokens, cost, latency."""
    failed_gates: dict[str, str] = field(default_factory=dict)
    """Gate (check) name -> why it failed: the run ends FAILED, tagged ``gate.failed`` and ``gate.<name>``."""
    run_name: str | None = None
    """The MLflow run's name; None: ``<model> <YYYY-MM-DD HH:MM:SS>`` (the start, UTC) and the Dagster run's first
    8 characters when tagged with one (``default_run_name``)."""
    started_at: float | None = None
    """When the evaluation started (epoch seconds: the Dagster run's start), the MLflow run's start time; None: now."""
    source: str | None = None
    """Where the evaluation is defined (the suite's file): the run's ``mlflow.source.name``; None: the suite."""


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite store under the state folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or paths.default_mlflow_uri()


def log_evaluation(record: EvaluationRecord, *, tracking_uri: str, experiment_name: str | None = None,
                   artifact_location: str | None = None) -> str:
    """Log ``record`` as one MLflow run (name ``record.run_name``, default ``default_run_name``); return its id.

    The experiment (default ``eval/<suite>``) is created when missing, with ``artifact_location``; for a
    SQLite store without one, artifacts go to an ``artifacts`` folder beside the database file. The run starts at
    ``record.started_at`` and ends when its logging is done; its source, user and description (``run_note``)
    are set as MLflow's UI shows them.
    """
    _check_extra_artifacts(record.extra_artifacts)
    _mlflow()
    from mlflow.entities import RunStatus

    name = experiment_name or default_experiment_name(record.suite)
    client, experiment_id = open_experiment(tracking_uri, name, artifact_location)
    started_at = record.started_at if record.started_at is not None else time.time()
    run_id = start_run(client, experiment_id, record.run_name or default_run_name(record, started_at),
                       _run_tags(record), start_time=started_at)
    try:
        metrics = _own_rows(record.metrics, record)
        _log_params(client, run_id, record.params)
        _log_metrics(client, run_id, metrics)
        _log_usage(client, run_id, record.usage)
        _log_dataset(client, run_id, record)
        _log_tables(client, run_id, record)
        _log_plot(client, run_id, metrics)
        _log_extra_artifacts(client, run_id, record.extra_artifacts)
        _log_failed_gates(client, run_id, record.failed_gates)
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    status = RunStatus.FAILED if record.failed_gates else RunStatus.FINISHED
    client.set_terminated(run_id, RunStatus.to_string(status))
    logger.info("logged %s/%s to MLflow run %s (experiment %r at %s)", record.suite, record.model, run_id,
                name, tracking_uri)
    return run_id


def default_experiment_name(suite: str) -> str:
    """The experiment a suite's runs go to when none is named: ``eval/<suite>``."""
    return f"eval/{suite}"


def open_experiment(tracking_uri: str, name: str, artifact_location: str | None = None) -> tuple[MlflowClient, str]:
    """A client bound to ``tracking_uri`` and the id of experiment ``name``, created (under the store lock)
    when missing; without ``artifact_location`` a SQLite store keeps artifacts in ``artifacts`` beside it."""
    mlflow = _mlflow()
    location = artifact_location or _sqlite_artifact_location(tracking_uri)
    with _sqlite_store_lock(tracking_uri):  # a fresh store is migrated on first use: one process at a time
        _create_sqlite_store(tracking_uri)
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _ensure_experiment(client, name, location)
    return client, experiment_id


def tracking_client(tracking_uri: str) -> MlflowClient:
    """A client bound to ``tracking_uri`` whose store exists: a fresh SQLite store is created and migrated
    under the store lock, one process at a time."""
    mlflow = _mlflow()
    with _sqlite_store_lock(tracking_uri):
        _create_sqlite_store(tracking_uri)
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        with arn_tracking_scope(tracking_uri):  # a SageMaker MLflow ARN: the plugin signs with MLflow's tracking URI
            client.search_experiments(max_results=1)
    return client


def _create_sqlite_store(tracking_uri: str) -> None:
    """A missing file-backed SQLite store, created and migrated in a temporary file beside it, then renamed into
    place: a process killed while migrating (the store is migrated as soon as a run starts) leaves no half-made
    store behind. Call under the store lock."""
    database = _sqlite_database(tracking_uri)
    if database is None or database.exists():
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_name(f".{database.name}.{os.getpid()}.creating")
    partial.unlink(missing_ok=True)
    client = _mlflow().MlflowClient(tracking_uri=f"sqlite:///{partial}")
    client.search_experiments(max_results=1)  # creates the tables, migrated to the head revision
    client._tracking_client.store.engine.dispose()  # no connection left open on the file about to move
    os.replace(partial, database)


def start_run(client: MlflowClient, experiment_id: str, run_name: str, tags: Mapping[str, str], *,
              start_time: float | None = None) -> str:
    """Create a RUNNING run tagged with this host and process (``process_tags``), so that a later process can
    end it as KILLED if this one dies before ending it; started at ``start_time`` (epoch seconds; None: now);
    returns its id."""
    started = None if start_time is None else int(start_time * 1000)
    run = client.create_run(experiment_id, run_name=run_name, tags={**process_tags(), **tags}, start_time=started)
    return run.info.run_id


def default_run_name(record: EvaluationRecord, started_at: float) -> str:
    """``<model> <YYYY-MM-DD HH:MM:SS>`` (the start, UTC), and `` (<first 8 of the Dagster run id>)`` when the
    record is tagged with one: the model and when, so that two runs of one model read apart."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started_at))
    dagster_run = record.tags.get(DAGSTER_RUN_ID_TAG) or record.tags.get("dagster_run_id")
    return f"{record.model} {when}" + (f" ({str(dagster_run)[:8]})" if dagster_run else "")


def run_note(record: EvaluationRecord, *, limit: int = 12) -> str:
    """The run's description (``mlflow.note.content``, shown on its page): suite, model, dataset, how many items,
    the headline metrics (value, interval, n) and the Dagster run."""
    lines = [f"**{record.suite}** · model **{record.model}**", "",
             f"- dataset: `{record.dataset_uri}`" + (f" (digest `{record.dataset_digest[:12]}`)"
                                                     if record.dataset_digest else ""),
             f"- items: {_item_count(record)}"]
    dagster_run = record.tags.get(DAGSTER_RUN_ID_TAG) or record.tags.get("dagster_run_id")
    if dagster_run:
        lines.append(f"- Dagster run: `{dagster_run}`")
    if record.failed_gates:
        lines.append(f"- failed gates: {', '.join(record.failed_gates)}")
    overall = _headline_rows(record)
    if overall:
        lines += ["", "| metric | value | 95% interval | n |", "| --- | --- | --- | --- |"]
        for row in overall[:limit]:
            low, high = _as_float(row.get("ci_low")), _as_float(row.get("ci_high"))
            interval = f"[{low:.4g}, {high:.4g}]" if low is not None and high is not None else ""
            n = _as_float(row.get("n"))
            lines.append(f"| {row.get('metric')} | {_figure(row.get('value'))} | {interval} | "
                         f"{'' if n is None else int(n)} |")
        if len(overall) > limit:
            lines.append(f"\n… and {len(overall) - limit} more metrics (see the run's metrics)")
    return "\n".join(lines)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys, values stringified (lists as JSON) and cut to MLflow's length limit."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name))
        else:
            flat[name] = _truncate(_param_text(value), MAX_PARAM_VAL_LENGTH)
    return flat


def sanitize_name(name: str) -> str:
    """A param or metric key MLflow accepts: only ``[A-Za-z0-9_\\-. /]``, no empty, ``.`` or ``..`` path
    segments, at most 250 characters; ``@`` becomes ``_at_`` (``pass@k`` → ``pass_at_k``)."""
    text = _BAD_NAME_CHARS.sub("_", str(name).replace("@", "_at_"))
    segments = [segment for segment in text.split("/") if segment]
    segments = ["_" if segment in (".", "..") else segment for segment in segments]
    return "/".join(segments)[:MAX_KEY_LENGTH].rstrip("/") or "_"


def metric_values(metrics: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """The MLflow metrics of a METRICS table and the names whose value was NaN (skipped).

    Overall rows give ``<metric>`` and ``<metric>.{stderr,ci_low,ci_high,n,errors}``; breakdown rows give
    ``<metric>.<breakdown_key>.<breakdown_value>``.
    """
    values: dict[str, float] = {}
    skipped: list[str] = []
    if metrics is None or metrics.empty:
        return values, skipped
    for row in metrics.to_dict("records"):
        metric = str(row.get("metric"))
        key = row.get("breakdown_key")
        if _is_null(key):
            pairs = [(metric, row.get("value"))]
            pairs += [(f"{metric}.{stat}", row.get(stat)) for stat in _OVERALL_STATS if stat in row]
        else:
            pairs = [(f"{metric}.{key}.{row.get('breakdown_value')}", row.get("value"))]
        for raw_name, raw_value in pairs:
            name = _unique(sanitize_name(raw_name), values)
            number = _as_float(raw_value)
            if number is None or math.isnan(number):
                skipped.append(name)
            else:
                values[name] = number
    return values, skipped


def ci_method_tags(metrics: pd.DataFrame) -> dict[str, str]:
    """``<metric>.ci_method`` tags naming how each overall row's interval was computed (METRICS ``ci_method``)."""
    if metrics is None or metrics.empty or "ci_method" not in metrics.columns:
        return {}
    overall = [row for row in metrics.to_dict("records") if _is_null(row.get("breakdown_key"))]
    return {sanitize_name(f"{row['metric']}.ci_method"): str(row["ci_method"])
            for row in overall if not _is_null(row.get("ci_method"))}


# --- pieces of log_evaluation -------------------------------------------------------------------------------


def _mlflow():
    """The ``mlflow`` module, imported with telemetry off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import mlflow.data

    return mlflow


def _check_extra_artifacts(extra: Mapping[str, Path]) -> None:
    missing = [f"{name}: {path}" for name, path in extra.items() if not Path(path).exists()]
    if missing:
        raise FileNotFoundError(f"extra artifacts not found: {', '.join(missing)}")


@contextlib.contextmanager
def _sqlite_store_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive file lock beside a file-backed SQLite store (no-op for other stores)."""
    database = _sqlite_database(tracking_uri)
    if database is None:
        yield
        return
    with exclusive_lock(database.parent / f"{database.name}.lock"):
        yield


def _sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a file-backed SQLite tracking URI, else None."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def _sqlite_artifact_location(tracking_uri: str) -> str | None:
    """``<folder of the database>/artifacts`` as a file URI for a file-backed SQLite store, else None."""
    database = _sqlite_database(tracking_uri)
    return None if database is None else (database.parent / "artifacts").as_uri()


def _ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``: created when missing (of kind ``EXPERIMENT_KIND``), restored when deleted;
    an experiment without a kind gets it once."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location,
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created concurrently
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _run_tags(record: EvaluationRecord) -> dict[str, str]:
    tags = {"suite": record.suite, "model": record.model, "dataset.uri": record.dataset_uri,
            SOURCE_NAME_TAG: record.source or record.suite, SOURCE_TYPE_TAG: "LOCAL", NOTE_TAG: run_note(record),
            USER_TAG: _user()}
    if record.dataset_digest:
        tags["dataset.digest"] = record.dataset_digest
    for key, value in record.tags.items():
        tags[_TAG_ALIASES.get(key, key)] = "" if value is None else str(value)
    return {key[:MAX_KEY_LENGTH]: _truncate(value, MAX_TAG_VAL_LENGTH) for key, value in tags.items()}


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    sanitized: dict[str, str] = {}
    for key, value in flatten_params(params).items():
        sanitized[_unique(sanitize_name(key), sanitized)] = value
    entries = [Param(key, value) for key, value in sanitized.items()]
    for chunk in _chunks(entries, MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=chunk, synchronous=True)


def _log_metrics(client: MlflowClient, run_id: str, metrics: pd.DataFrame) -> None:
    log_metric_values(client, run_id, *metric_values(metrics), level=logging.WARNING)
    from mlflow.entities import RunTag

    tags = [RunTag(key, value) for key, value in ci_method_tags(metrics).items()]
    for chunk in _chunks(tags, MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=chunk, synchronous=True)


def log_metric_values(client: MlflowClient, run_id: str, values: Mapping[str, float], skipped: list[str], *,
                      level: int = logging.INFO) -> None:
    """Log ``values`` in batches at one timestamp; say which NaN values were ``skipped``."""
    from mlflow.entities import Metric

    if skipped:
        shown = ", ".join(skipped[:10]) + (", …" if len(skipped) > 10 else "")
        logger.log(level, "skipped %d NaN metric value(s) for MLflow run %s: %s", len(skipped), run_id, shown)
    timestamp = int(time.time() * 1000)
    entries = [Metric(key, value, timestamp, 0) for key, value in values.items()]
    for chunk in _chunks(entries, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk, synchronous=True)


def _log_usage(client: MlflowClient, run_id: str, usage: Mapping[str, float]) -> None:
    from mlflow.entities import Metric

    timestamp = int(time.time() * 1000)
    entries = [Metric(f"usage.{sanitize_name(k)}", float(v), timestamp, 0) for k, v in usage.items()
               if _as_float(v) is not None and math.isfinite(float(v))]
    if entries:
        client.log_batch(run_id, metrics=entries, synchronous=True)


def _log_dataset(client: MlflowClient, run_id: str, record: EvaluationRecord) -> None:
    """The samples table as a dataset input: name = suite, source = dataset_uri, digest as given."""
    mlflow = _mlflow()
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    digest = record.dataset_digest
    if digest and len(digest) > MAX_DATASET_DIGEST_LENGTH:
        logger.info("dataset digest cut to MLflow's %d characters (full value in run tag dataset.digest)",
                    MAX_DATASET_DIGEST_LENGTH)
        digest = digest[:MAX_DATASET_DIGEST_LENGTH]
    samples = record.samples if record.samples is not None else pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # schema-inference hints about integer columns and ambiguous sources
        dataset = mlflow.data.from_pandas(_jsonable(samples), source=_dataset_source(record.dataset_uri),
                                          name=record.suite, digest=digest or None)
        entity = dataset._to_mlflow_entity()
    inputs = [DatasetInput(dataset=entity, tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=DATASET_CONTEXT)])]
    from mlflow.exceptions import MlflowException

    try:
        client.log_inputs(run_id, datasets=inputs)
    except MlflowException as exc:  # another process created the same dataset between MLflow's lookup and insert
        if "unique constraint" not in str(exc).lower():
            raise
        client.log_inputs(run_id, datasets=inputs)  # the lookup finds it now: the run links the same dataset


def _dataset_source(uri: str):
    """MLflow's own source for URIs it knows (local paths, s3://, https://, …), else a plain URI source."""
    _mlflow()
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.exceptions import MlflowException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return resolve_dataset_source(uri)
    except MlflowException:
        return _uri_source_class()(uri)


@cache
def _uri_source_class() -> type:
    """A DatasetSource that records only a URI (for schemes MLflow has no resolver for, e.g. ``hf://``)."""
    from mlflow.data.dataset_source import DatasetSource

    class UriDatasetSource(DatasetSource):
        """A dataset location MLflow cannot load itself; kept for lineage."""

        def __init__(self, uri: str) -> None:
            self.uri = uri

        @staticmethod
        def _get_source_type() -> str:
            return "uri"

        def load(self, **kwargs: Any) -> str:
            raise NotImplementedError(f"MLflow cannot load {self.uri}")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> UriDatasetSource:
            return cls(str(raw_source))

        def to_dict(self) -> dict[str, Any]:
            return {"uri": self.uri}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> UriDatasetSource:
            return cls(source_dict["uri"])

    return UriDatasetSource


def _log_tables(client: MlflowClient, run_id: str, record: EvaluationRecord) -> None:
    items = record.items if record.items is not None else pd.DataFrame()
    client.log_table(run_id, _jsonable(items), ITEMS_ARTIFACT)
    metrics = record.metrics if record.metrics is not None else pd.DataFrame()
    client.log_table(run_id, _jsonable(metrics), METRICS_TABLE_ARTIFACT)
    client.log_text(run_id, metrics.to_csv(index=False), METRICS_CSV_ARTIFACT)


def _log_plot(client: MlflowClient, run_id: str, metrics: pd.DataFrame) -> None:
    """The metrics plot (an SVG written without matplotlib); a failure to draw it is logged, not raised."""
    from eval_pipeline.tracking.metrics_plot import metrics_svg

    try:
        svg = metrics_svg(metrics)
    except Exception:
        logger.warning("could not draw the metrics plot for MLflow run %s", run_id, exc_info=True)
        return
    client.log_text(run_id, svg, PLOT_ARTIFACT)


def _log_failed_gates(client: MlflowClient, run_id: str, failed: Mapping[str, str]) -> None:
    """Tags ``gate.failed`` (the failed gates' names) and ``gate.<name>`` (why each failed)."""
    if not failed:
        return
    client.set_tag(run_id, GATE_FAILED_TAG, ",".join(failed))
    for gate, reason in failed.items():
        client.set_tag(run_id, gate_tag(gate), _truncate(reason, MAX_TAG_VAL_LENGTH))


def gate_tag(gate: str) -> str:
    """The tag holding one gate's verdict on a run: ``gate.<name>``."""
    return f"gate.{sanitize_name(gate)}"[:MAX_KEY_LENGTH]


def record_gate_verdict(client: MlflowClient, run_id: str, gate: str, reason: str | None) -> None:
    """One gate's verdict on a run logged before the gate ran (a Dagster asset check on the metrics): failed
    (``reason`` given) is recorded as ``log_evaluation`` records a failed gate (its name added to ``gate.failed``,
    the reason in ``gate.<name>``) and the run ends FAILED; passed sets ``gate.<name>`` to ``passed`` and takes
    the gate out of ``gate.failed``, and a run that only this gate had failed ends FINISHED again."""
    from mlflow.entities import RunStatus

    failed = [name for name in client.get_run(run_id).data.tags.get(GATE_FAILED_TAG, "").split(",") if name]
    others = [name for name in failed if name != gate]
    if reason is not None:
        client.set_tag(run_id, GATE_FAILED_TAG, ",".join([*others, gate]))
        client.set_tag(run_id, gate_tag(gate), _truncate(reason or "failed", MAX_TAG_VAL_LENGTH))
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        return
    client.set_tag(run_id, gate_tag(gate), "passed")
    if gate not in failed:
        return
    if others:
        client.set_tag(run_id, GATE_FAILED_TAG, ",".join(others))
        return
    client.delete_tag(run_id, GATE_FAILED_TAG)
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def _log_extra_artifacts(client: MlflowClient, run_id: str, extra: Mapping[str, Path]) -> None:
    """Each file (or folder) uploaded under its run-relative name."""
    for name, local in extra.items():
        local = Path(local)
        parts = str(name).replace("\\", "/").split("/")
        target = "/".join(part for part in parts if part not in ("", ".", "..")) or local.name
        if local.is_dir():
            client.log_artifacts(run_id, str(local), artifact_path=target)
            continue
        folder, _, filename = target.rpartition("/")
        if filename == local.name:
            client.log_artifact(run_id, str(local), artifact_path=folder or None)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            renamed = Path(tmp) / filename
            shutil.copyfile(local, renamed)
            client.log_artifact(run_id, str(renamed), artifact_path=folder or None)


# --- helpers ------------------------------------------------------------------------------------------------


def _item_count(record: EvaluationRecord) -> int:
    """Distinct items: the samples table's rows (the items table's sample ids when there is none)."""
    if record.samples is not None and not record.samples.empty:
        return len(record.samples)
    if record.items is not None and "sample_id" in record.items.columns:
        return int(record.items["sample_id"].nunique())
    return 0


def _headline_rows(record: EvaluationRecord) -> list[dict[str, Any]]:
    """The overall rows (no breakdown) of the record's own metrics."""
    metrics = _own_rows(record.metrics, record) if record.metrics is not None else pd.DataFrame()
    if metrics.empty or "metric" not in metrics.columns:
        return []
    return [row for row in metrics.to_dict("records") if _is_null(row.get("breakdown_key"))]


def _figure(value: Any) -> str:
    number = _as_float(value)
    return "" if number is None else f"{number:.4g}"


def _user() -> str:
    """The user running the evaluation (``mlflow.user``), as the login name says."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


def _own_rows(metrics: pd.DataFrame, record: EvaluationRecord) -> pd.DataFrame:
    """The metrics rows of this record's suite and model, when the table holds others too."""
    if metrics is None or metrics.empty:
        return pd.DataFrame() if metrics is None else metrics
    keep = pd.Series(True, index=metrics.index)
    for column, wanted in (("suite", record.suite), ("model", record.model)):
        if column in metrics.columns:
            matches = metrics[column].astype(str) == wanted
            if matches.any() and not matches.all():
                keep &= matches
    if not keep.all():
        logger.warning("metrics table holds %d row(s) of other suites/models; logging only %s/%s",
                       int((~keep).sum()), record.suite, record.model)
    return metrics[keep]


def _jsonable(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose object columns hold only str, numbers or None (other objects become str / JSON)."""
    frame = frame.reset_index(drop=True).copy()
    frame.columns = [str(column) for column in frame.columns]
    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        if series.dtype != object:
            continue
        present = [value for value in series if not _is_null(value)]
        if all(isinstance(value, str) for value in present):
            kind_ok = True
        else:
            kind_ok = all(isinstance(value, numbers.Real) and not isinstance(value, str) for value in present)
        if kind_ok:
            frame[column] = series.map(lambda value: None if _is_null(value) else value).astype(object)
        else:
            frame[column] = series.map(_as_text).astype(object)
    return frame


def _as_text(value: Any) -> str | None:
    if _is_null(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _param_text(value: Any) -> str:
    if isinstance(value, list | tuple | Mapping):
        try:
            return json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _is_null(value: Any) -> bool:
    """None, NaN, NaT or pd.NA; never true (nor an error) for containers and arrays."""
    if value is None:
        return True
    if isinstance(value, str | bytes | Mapping | list | tuple | set | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_float(value: Any) -> float | None:
    if _is_null(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _unique(name: str, taken: Mapping[str, Any] | Iterable[str]) -> str:
    """``name``, or ``name_2``, ``name_3``… when already taken (two raw names that sanitize alike)."""
    if name not in taken:
        return name
    index = 2
    while f"{name}_{index}" in taken:
        index += 1
    logger.warning("MLflow key %r is taken; using %r", name, f"{name}_{index}")
    return f"{name}_{index}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _chunks(entries: list, size: int) -> Iterator[list]:
    for start in range(0, len(entries), size):
        yield entries[start:start + size]
