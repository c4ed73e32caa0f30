"""``LLMAsJudgeEvaluator``: the SageMaker SDK's LLM-as-judge flow on this pipeline.

The arguments become a suite (models, dataset, judge); constructing the evaluator validates all of it, judge metrics
included, before anything runs. ``evaluate()`` writes the suite to ``paths.sdk_suites_dir()`` and runs it in this
process (a background thread) or on a Dagster webserver, and returns an ``EvaluationExecution``.
"""

from __future__ import annotations

import glob
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.judging.setup import suite_judge_metrics
from eval_pipeline.resources.parquet_io import ParquetIOManager
from eval_pipeline.sdk import dagster_remote, in_process
from eval_pipeline.sdk.execution import EvaluationExecution
from eval_pipeline.sdk.models import describe, distinct_names, resolve_model
from eval_pipeline.sdk.outputs import bedrock_output_paths, table_paths
from eval_pipeline.sdk.records import new_execution_id, record_path, update_record, write_record
from eval_pipeline.sdk.status import EVALUATOR_TAG, EXECUTION_TAG, planned_steps
from eval_pipeline.sdk.suite_files import project_suite_names, write_suite
from eval_pipeline.suites.loading import load_suite
from eval_pipeline.suites.spec import EMBEDDED_MODEL, ModelSpec, Suite

EVALUATOR = "llm_as_judge"
DEFAULT_SUITE_NAME = "llm_as_judge"
ModelArg = ModelSpec | dict[str, Any] | str


class LLMAsJudgeEvaluator:
    """Evaluate ``model`` (and optionally ``base_model``, compared item by item) with an LLM judge.

    Models are a ``ModelSpec``, a dict of its fields, or a string (see ``eval_pipeline.sdk.models``).
    ``custom_metrics`` is ``customMetricDefinition`` JSON text, a JSON file path, or a list of dicts.
    ``output_path`` (alias ``s3_output_path``): a folder or ``s3://`` prefix for the Parquet tables and the
    Bedrock-shaped JSONL (in webserver mode the tables stay where the deployment writes them).
    ``dagster_url`` (or ``$EVAL_PIPELINE_DAGSTER_URL``): run on that webserver instead of in this process.
    ``max_error_rate``: the share of judgments (and generations) that may fail before the execution fails.
    ``judge_verdict``: "generate" (the judge writes a verdict line) or "likelihood" (the likeliest rating level);
    by default "likelihood" for a local judge, which is too small to write a verdict line reliably.
    """

    def __init__(self, model: ModelArg, *, dataset: str | os.PathLike, evaluator_model: ModelArg = EMBEDDED_MODEL,
                 builtin_metrics: list[str] | None = None, custom_metrics: str | os.PathLike | list | None = None,
                 evaluate_base_model: bool | None = None, base_model: ModelArg | None = None,
                 mlflow_experiment_name: str | None = None, output_path: str | None = None,
                 s3_output_path: str | None = None, name: str | None = None, max_tokens: int = 256,
                 judge_max_tokens: int = 256, limit: int | None = None, pairwise: bool = False,
                 human_labels: dict[str, str] | None = None, dagster_url: str | None = None,
                 max_error_rate: float = 0.0, judge_verdict: str | None = None) -> None:
        self.name = name or DEFAULT_SUITE_NAME
        if self.name in project_suite_names():
            raise ValueError(f"name {self.name!r} is already a suite in {paths.suites_dir()}; pass another name=")
        if evaluate_base_model is None:
            evaluate_base_model = base_model is not None
        if evaluate_base_model and base_model is None:
            raise ValueError("evaluate_base_model=True needs base_model= (the model to compare against)")
        self.evaluate_base_model = evaluate_base_model
        spec = resolve_model(model, role="model")
        base = resolve_model(base_model, role="base_model") if base_model is not None else None
        self.model, self.base_model = distinct_names(spec, base)
        self.evaluator_model = resolve_model(evaluator_model, role="evaluator_model")
        self.dataset = _dataset_uri(dataset)
        self.output_path = _output_root(output_path, s3_output_path)
        self.mlflow_experiment = mlflow_experiment_name or f"eval/{self.name}"
        self.dagster_url = dagster_url or os.environ.get(dagster_remote.URL_ENV) or None
        self.suite = _validated_suite({
            "suite": self.name,
            "description": "LLM-as-judge evaluation created by eval_pipeline.sdk.LLMAsJudgeEvaluator",
            "dataset": {"uri": self.dataset, "limit": limit},
            "models": [m for m in (self.base_model if evaluate_base_model else None, self.model) if m is not None],
            "generation": {"max_tokens": max_tokens},
            "scorers": [],
            "judge": {"model": self.evaluator_model, "verdict": judge_verdict or _default_verdict(self.evaluator_model),
                      "builtin_metrics": list(builtin_metrics or []),
                      "custom_metrics": _custom_metrics(custom_metrics), "max_tokens": judge_max_tokens,
                      "pairwise": pairwise, "human_labels": dict(human_labels or {})},
            "baseline": self.base_model.name if evaluate_base_model and self.base_model else None,
            "mlflow_experiment": self.mlflow_experiment,
            "max_error_rate": max_error_rate,
            "schedule": None,
        })
        self.metrics = [m.name for m in suite_judge_metrics(self.suite)]  # JudgeMetricError before any inference

    # -- running

    def evaluate(self) -> EvaluationExecution:
        """Start the evaluation and return at once; ``wait()`` on the execution to follow it."""
        execution_id = new_execution_id(self.name)
        suite = load_suite(write_suite(self.suite, f"Written by eval_pipeline.sdk.LLMAsJudgeEvaluator for "
                                                   f"execution {execution_id}; re-written by each evaluate()."))
        local_outputs = self.output_path if self.output_path and not self.dagster_url else str(paths.outputs_dir())
        outputs, comparison = table_paths(suite, local_outputs)
        models = [m.name for m in suite.models]
        tags = {EXECUTION_TAG: execution_id, EVALUATOR_TAG: EVALUATOR}
        output_root = self.output_path or str(paths.outputs_dir())
        record = {
            "id": execution_id, "arn": f"arn:eval-pipeline:local:llm-as-judge/execution/{execution_id}",
            "evaluator": EVALUATOR, "suite": suite.suite, "suite_path": suite.source_path,
            "created_at": time.time(), "mode": "webserver" if self.dagster_url else "in_process",
            "dagster_url": self.dagster_url, "host": socket.gethostname(), "pid": os.getpid(),
            "config": self.config(), "tags": tags, "baseline": suite.baseline,
            "models": [{"name": m.name, "role": "base" if m.name == suite.baseline else "model",
                        "model_identifier": m.model or m.endpoint or m.name, "spec": describe(m)}
                       for m in sorted(suite.models, key=lambda m: m.name == suite.baseline)],
            "steps": planned_steps(suite.suite, models, suite.baseline),
            "state": "Executing", "failure_reason": None, "stop_requested": False, "runs": {}, "step_errors": {},
            "outputs": outputs, "comparison_outputs": comparison, "output_root": output_root,
            "bedrock_outputs": bedrock_output_paths(suite.suite, output_root, execution_id, models),
            "mlflow_experiment": self.mlflow_experiment,
        }
        path = record_path(execution_id)
        write_record(path, record)
        if self.dagster_url:
            try:
                dagster_remote.submit(path, tags)
            except Exception as exc:
                update_record(path, state="Failed", failure_reason=f"submission failed: {exc}",
                              finished_at=time.time())
                raise
            dagster_remote.watch(path)
        else:
            in_process.start(path, suite, in_process.local_dagster(), self._resources(), tags)
        return EvaluationExecution(path)

    def _resources(self) -> dict[str, Any]:
        from eval_pipeline.suite_definitions import default_resources

        resources = default_resources()
        if self.output_path:
            resources["io_manager"] = ParquetIOManager(base_path=self.output_path)
        return resources

    @classmethod
    def get_all(cls, region: str | None = None) -> Iterator[EvaluationExecution]:
        """Every LLM-as-judge execution recorded under this state folder, newest first (``region`` is ignored)."""
        return EvaluationExecution.list_all(evaluator=EVALUATOR)

    # -- display

    def config(self) -> dict[str, Any]:
        """The evaluator's settings as plain data (recorded with each execution)."""
        judge = self.suite.judge
        assert judge is not None
        return {
            "name": self.name, "model": describe(self.model),
            "base_model": describe(self.base_model) if self.base_model else None,
            "evaluate_base_model": self.evaluate_base_model, "evaluator_model": describe(self.evaluator_model),
            "dataset": self.dataset, "limit": self.suite.dataset.limit, "metrics": self.metrics,
            "builtin_metrics": list(judge.builtin_metrics), "max_tokens": self.suite.generation.max_tokens,
            "judge_max_tokens": judge.max_tokens, "judge_verdict": judge.verdict, "pairwise": judge.pairwise,
            "human_labels": dict(judge.human_labels),
            "mlflow_experiment": self.mlflow_experiment, "output_path": self.output_path,
            "dagster_url": self.dagster_url, "max_error_rate": self.suite.max_error_rate,
        }

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        yield from self.config().items()

    def __repr__(self) -> str:
        fields = ",\n".join(f"    {key}={value!r}" for key, value in self.config().items())
        return f"LLMAsJudgeEvaluator(\n{fields},\n)"


def _validated_suite(data: dict[str, Any]) -> Suite:
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise EvalInputError(message, field=field) from None


def _dataset_uri(dataset: str | os.PathLike) -> str:
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


def _output_root(output_path: str | None, s3_output_path: str | None) -> str | None:
    if output_path and s3_output_path and output_path != s3_output_path:
        raise ValueError("give output_path or s3_output_path (its alias), not two different values")
    root = output_path or s3_output_path
    if not root:
        return None
    if "://" in root:
        return root.rstrip("/")
    return str(Path(root).expanduser().absolute())


def _custom_metrics(value: Any) -> Any:
    """A file path made absolute (the suite file lives elsewhere); JSON text and Python data as given."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()
                                          and value.strip()[0] not in "[{" and Path(value.strip()).is_file()):
        return str(Path(os.fspath(value).strip()).expanduser().absolute())
    return value


def _default_verdict(evaluator_model: Any) -> str:
    """Likelihood verdicts for a local judge (the embedded 135M model rarely writes a verdict line), else the
    judge's own written verdict."""
    return "likelihood" if getattr(evaluator_model, "backend", None) == "local" else "generate"
