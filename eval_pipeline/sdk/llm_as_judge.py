"""``LLMAsJudgeEvaluator``: the SageMaker SDK's LLM-as-judge flow on this pipeline.

The arguments become a suite (models, dataset, judge); constructing the evaluator validates all of it, judge metrics
included, before anything runs. ``evaluate()`` writes the suite to ``paths.sdk_suites_dir()`` and runs it in this
process (a background thread) or on a Dagster webserver, and returns an ``EvaluationExecution``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eval_pipeline.judging.setup import suite_judge_metrics
from eval_pipeline.sdk.evaluation_launch import (
    ConfiguredEvaluator,
    Launch,
    check_name,
    dataset_uri,
    executions,
    launch,
    output_root,
    validated_suite,
)
from eval_pipeline.sdk.evaluation_launch import dagster_url as resolve_dagster_url
from eval_pipeline.sdk.execution import EvaluationExecution
from eval_pipeline.sdk.models import describe, distinct_names, resolve_model
from eval_pipeline.suites.checks import check_suite
from eval_pipeline.suites.spec import EMBEDDED_MODEL, ModelSpec

EVALUATOR = "llm_as_judge"
DEFAULT_SUITE_NAME = "llm_as_judge"
ModelArg = ModelSpec | dict[str, Any] | str


class LLMAsJudgeEvaluator(ConfiguredEvaluator):
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
        self.name = check_name(name or DEFAULT_SUITE_NAME)
        if evaluate_base_model is None:
            evaluate_base_model = base_model is not None
        if evaluate_base_model and base_model is None:
            raise ValueError("evaluate_base_model=True needs base_model= (the model to compare against)")
        self.evaluate_base_model = evaluate_base_model
        spec = resolve_model(model, role="model")
        base = resolve_model(base_model, role="base_model") if base_model is not None else None
        self.model, self.base_model = distinct_names(spec, base)
        self.evaluator_model = resolve_model(evaluator_model, role="evaluator_model")
        self.dataset = dataset_uri(dataset)
        self.output_path = output_root(output_path, s3_output_path)
        self.mlflow_experiment = mlflow_experiment_name or f"eval/{self.name}"
        self.dagster_url = resolve_dagster_url(dagster_url)
        self.suite = validated_suite({
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
        }, check=False)
        self.metrics = [m.name for m in suite_judge_metrics(self.suite)]  # JudgeMetricError before any inference
        check_suite(self.suite)  # then what a suite file is checked for when it loads

    # -- running

    def evaluate(self) -> EvaluationExecution:
        """Start the evaluation and return at once; ``wait()`` on the execution to follow it."""
        return launch(self.suite, Launch(
            evaluator=EVALUATOR, id_prefix="llmaj", arn_kind="llm-as-judge",
            writer="eval_pipeline.sdk.LLMAsJudgeEvaluator", config=self.config(), output_path=self.output_path,
            dagster_url=self.dagster_url, mlflow_experiment=self.mlflow_experiment))

    @classmethod
    def get_all(cls, region: str | None = None) -> Iterator[EvaluationExecution]:
        """Every LLM-as-judge execution recorded under this state folder, newest first (``region`` is ignored)."""
        return executions(EVALUATOR)

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


def _custom_metrics(value: Any) -> Any:
    """A file path made absolute (the suite file lives elsewhere); JSON text and Python data as given."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()
                                          and value.strip()[0] not in "[{" and Path(value.strip()).is_file()):
        return str(Path(os.fspath(value).strip()).expanduser().absolute())
    return value


def _default_verdict(evaluator_model: Any) -> str:
    """Likelihood verdicts for a judge whose backend declares it scores text in this process (``likelihood`` and not
    ``remote`` in the backend registry: the embedded 135M model rarely writes a verdict line), else the judge's own
    written verdict (a remote service's large model writes one; its log-probabilities may not be offered)."""
    from eval_pipeline.inference.backend_registry import BACKEND_REGISTRY, backend

    name = getattr(evaluator_model, "backend", None)
    if not isinstance(name, str) or name not in BACKEND_REGISTRY:
        return "generate"  # an unknown backend is reported when the suite is checked
    declared = backend(name)
    return "likelihood" if declared.likelihoods and not declared.remote else "generate"
