"""What every SDK evaluator shares: checking its inputs (dataset URI, output root, run tags, the whole suite) and
launching an execution (the suite file, the execution record, the run in this process or on a Dagster webserver).

``LLMAsJudgeEvaluator`` and ``MultiTurnRLEvaluator`` build their suites differently and launch them the same way.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.resources.parquet_io import ParquetIOManager
from eval_pipeline.sdk import dagster_remote, in_process
from eval_pipeline.sdk.execution import EvaluationExecution
from eval_pipeline.sdk.models import describe
from eval_pipeline.sdk.outputs import bedrock_output_paths, table_paths
from eval_pipeline.sdk.quiet_logs import quiet_store_logs
from eval_pipeline.sdk.records import new_execution_id, record_path, update_record, write_record
from eval_pipeline.sdk.status import EVALUATOR_TAG, EXECUTION_TAG, planned_steps
from eval_pipeline.sdk.suite_files import project_suite_names, write_suite
from eval_pipeline.suites.checks import check_suite
from eval_pipeline.suites.loading import load_suite
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tracking.run_labels import MLFLOW_RUN_NAME_TAG, MLFLOW_TAGS_TAG
from eval_pipeline.tracking.sagemaker_arn import arn_problem, is_arn

log = logging.getLogger(__name__)
RESERVED_TAG_PREFIXES = ("dagster/", "eval_pipeline/", "mlflow.")
MAX_TAG_KEY_CHARS = 128
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")


class ConfiguredEvaluator:
    """An evaluator shown by its settings: ``config()`` is the plain data recorded with each execution."""

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        yield from self.config().items()

    def __repr__(self) -> str:
        fields = ",\n".join(f"    {key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}(\n{fields},\n)"


@dataclass(frozen=True)
class Launch:
    """How one evaluator kind launches its suite: its name (``EVALUATOR_TAG``), the prefix of its execution ids and
    ARNs, and the settings recorded with each execution."""

    evaluator: str
    id_prefix: str
    arn_kind: str
    writer: str
    """The class named in the suite file's header, e.g. ``eval_pipeline.sdk.LLMAsJudgeEvaluator``."""
    config: dict[str, Any]
    output_path: str | None
    dagster_url: str | None
    mlflow_experiment: str
    run_tags: dict[str, str] = field(default_factory=dict)
    """Extra Dagster run tags (the user's tags, the MLflow run-name and tag carriers)."""
    mlflow_tracking_uri: str | None = None
    """Where the runs are logged (``mlflow_resource_arn``); None: the pipeline's MLflow store."""
    bedrock_outputs: bool = True
    """Whether the execution writes Bedrock-shaped JSONL per model (judged generations)."""


def check_name(name: str) -> str:
    if name in project_suite_names():
        raise ValueError(f"name {name!r} is already a suite in {paths.suites_dir()}; pass another name=")
    return name


def dagster_url(url: str | None) -> str | None:
    """``url``, else ``$EVAL_PIPELINE_DAGSTER_URL``, else None (run in this process)."""
    return url or os.environ.get(dagster_remote.URL_ENV) or None


def validated_suite(data: dict[str, Any], *, check: bool = True) -> Suite:
    """The suite, validated whole (its shape, then, with ``check``, the checks a suite file gets when it loads:
    names, ranges, the environment); the first problem as an ``EvalInputError`` naming its field."""
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise EvalInputError(message, field=field_name) from None
    if check:
        check_suite(suite)
    return suite


def dataset_uri(dataset: str | os.PathLike) -> str:
    """``s3://`` URIs as given; local paths and globs made absolute, and checked to match something."""
    text = os.fspath(dataset).strip()
    if "://" in text:
        if not text.startswith("s3://"):
            raise ValueError(f"dataset {text!r}: give a local path or glob, or an s3:// URI")
        return text
    if text.startswith("arn:"):
        raise ValueError(f"dataset {text!r}: dataset ARNs are not supported; give a local path or an s3:// URI")
    path = str(Path(text).expanduser().absolute())
    if glob.has_magic(path):
        if not glob.glob(path):
            raise ValueError(f"dataset {text!r}: no file matches this pattern")
    elif not Path(path).exists():
        raise ValueError(f"dataset {text!r}: no such file or folder")
    return path


def output_root(output_path: str | None, s3_output_path: str | None) -> str | None:
    """A folder made absolute, or an ``s3://`` prefix without its trailing slash; None when neither is given."""
    if output_path and s3_output_path and output_path != s3_output_path:
        raise ValueError("give output_path or s3_output_path (its alias), not two different values")
    root = output_path or s3_output_path
    if not root:
        return None
    if "://" in root:
        return root.rstrip("/")
    return str(Path(root).expanduser().absolute())


def mlflow_tracking_uri(value: str | None, dagster_url: str | None) -> str | None:
    """The seed's ``mlflow_resource_arn`` as an MLflow tracking URI: a SageMaker MLflow ARN (MLflow reads it with
    the ``sagemaker-mlflow`` plugin installed) or any tracking URI (``http(s)://``, ``sqlite:///``, a database,
    ``databricks``); None or empty: the pipeline's own store. Only for an evaluation in this process."""
    text = (value or "").strip()
    if not text:
        return None
    where = "mlflow_resource_arn"
    if dagster_url:
        raise EvalInputError("applies to an evaluation in this process; a Dagster webserver logs to the MLflow store "
                             "its deployment configures ($MLFLOW_TRACKING_URI there)", field=where)
    if is_arn(text):  # MLflow's tracking URI while the pipeline logs: eval_pipeline.tracking.sagemaker_arn
        problem = arn_problem(text)
        if problem:
            raise EvalInputError(problem, field=where)
        return text
    scheme = text.split(":", 1)[0].split("+", 1)[0].casefold()
    if scheme == "file" or ("://" not in text and scheme != "databricks"):
        raise EvalInputError(f"{text!r}: give an MLflow tracking URI ({', '.join(TRACKING_SCHEMES)}; for a local "
                             f"store sqlite:///<path>.db, MLflow's file store is in maintenance mode) or a "
                             f"SageMaker MLflow ARN", field=where)
    if scheme not in TRACKING_SCHEMES:
        raise EvalInputError(f"{text!r}: unknown tracking URI scheme {scheme!r}; one of {', '.join(TRACKING_SCHEMES)}",
                             field=where)
    return text


def user_tags(tags: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> dict[str, str]:
    """SageMaker-style ``[{"Key": …, "Value": …}]`` (or a plain mapping) as a dict; keys must be non-empty, unique
    and not in the pipeline's own namespaces."""
    if tags is None:
        return {}
    pairs: list[tuple[Any, Any]]
    if isinstance(tags, Mapping):
        pairs = list(tags.items())
    else:
        pairs = []
        for index, tag in enumerate(tags):
            if not isinstance(tag, Mapping) or set(tag) - {"Key", "Value"} or "Key" not in tag:
                raise EvalInputError(f"a tag is {{'Key': …, 'Value': …}}, got {tag!r}", field=f"tags[{index}]")
            pairs.append((tag["Key"], tag.get("Value", "")))
    result: dict[str, str] = {}
    for key, value in pairs:
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_TAG_KEY_CHARS:
            raise EvalInputError(f"tag key {key!r}: a non-empty string of at most {MAX_TAG_KEY_CHARS} characters",
                                 field="tags")
        if key.startswith(RESERVED_TAG_PREFIXES):
            raise EvalInputError(f"tag key {key!r}: keys starting with {', '.join(RESERVED_TAG_PREFIXES)} are "
                                 f"reserved", field="tags")
        if key in result:
            raise EvalInputError(f"tag key {key!r} is given twice", field="tags")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise EvalInputError(f"tag {key!r}: the value must be a string, not {type(value).__name__}",
                                 field="tags")
        result[key] = "" if value is None else str(value)
    return result


def tracking_tags(tags: Mapping[str, str], run_name: str | None) -> dict[str, str]:
    """The Dagster run tags that carry the user's tags and run-name prefix to each model's MLflow run (the metrics
    asset reads them: ``eval_pipeline.tracking.run_labels``), plus the user's tags themselves."""
    carried = dict(tags)
    if tags:
        carried[MLFLOW_TAGS_TAG] = json.dumps(dict(tags), sort_keys=True)
    if run_name:
        carried[MLFLOW_RUN_NAME_TAG] = run_name
    return carried


def launch(suite: Suite, how: Launch) -> EvaluationExecution:
    """Write the suite file, record the execution, start it (in this process, or on the webserver) and return it."""
    quiet_store_logs()  # before the Dagster instance and the MLflow store are opened (and migrated)
    execution_id = new_execution_id(suite.suite, how.id_prefix)
    suite = load_suite(write_suite(suite, f"Written by {how.writer} for execution {execution_id}; re-written by "
                                          f"each evaluate()."))
    local_outputs = how.output_path if how.output_path and not how.dagster_url else paths.outputs_location()
    outputs, comparison = table_paths(suite, local_outputs)
    models = [m.name for m in suite.models]
    tags = {**how.run_tags, EXECUTION_TAG: execution_id, EVALUATOR_TAG: how.evaluator}
    root = how.output_path or paths.outputs_location()
    record = {
        "id": execution_id, "arn": f"arn:eval-pipeline:local:{how.arn_kind}/execution/{execution_id}",
        "evaluator": how.evaluator, "suite": suite.suite, "suite_path": suite.source_path,
        "task": suite.task, "production_stage": task_kind(suite).production_stage,
        "created_at": time.time(), "mode": "webserver" if how.dagster_url else "in_process",
        "dagster_url": how.dagster_url, "host": socket.gethostname(), "pid": os.getpid(),
        "config": how.config, "tags": tags, "baseline": suite.baseline,
        "models": [{"name": m.name, "role": "base" if m.name == suite.baseline else "model",
                    "model_identifier": m.model or m.endpoint or m.name, "spec": describe(m)}
                   for m in sorted(suite.models, key=lambda m: m.name == suite.baseline)],
        "steps": planned_steps(suite.suite, models, suite.baseline),
        "state": "Executing", "failure_reason": None, "stop_requested": False, "runs": {}, "step_errors": {},
        "outputs": outputs, "comparison_outputs": comparison, "output_root": root,
        "bedrock_outputs": bedrock_output_paths(suite.suite, root, execution_id, models) if how.bedrock_outputs
        else {},
        "mlflow_experiment": how.mlflow_experiment, "mlflow_tracking_uri": how.mlflow_tracking_uri,
    }
    path = record_path(execution_id)
    write_record(path, record)
    if how.dagster_url:
        try:
            dagster_remote.submit(path, tags)
        except Exception as exc:
            update_record(path, state="Failed", failure_reason=f"submission failed: {exc}", finished_at=time.time())
            raise
        dagster_remote.watch(path)
    else:
        in_process.start(path, suite, in_process.local_dagster(),
                         local_resources(how.output_path, how.mlflow_tracking_uri), tags)
    log.info("started execution %s: suite %s, %s %s, %s (%s)", execution_id, suite.suite,
             "models" if len(models) > 1 else "model", ", ".join(models), suite.dataset.uri,
             f"on {how.dagster_url}" if how.dagster_url else "in this process")
    return EvaluationExecution(path)


def local_resources(output_path: str | None, tracking_uri: str | None = None) -> dict[str, Any]:
    """The default resources, with the Parquet IO manager under ``output_path`` and MLflow at ``tracking_uri``
    when they are given."""
    from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
    from eval_pipeline.suite_definitions import default_resources

    resources = default_resources()
    if output_path:
        resources["io_manager"] = ParquetIOManager(base_path=output_path)
    if tracking_uri:
        resources["mlflow"] = MlflowTrackingResource(tracking_uri=tracking_uri)
    return resources


def executions(evaluator: str) -> Iterator[EvaluationExecution]:
    """Every execution of one evaluator kind recorded under this state folder, newest first."""
    return EvaluationExecution.list_all(evaluator=evaluator)
