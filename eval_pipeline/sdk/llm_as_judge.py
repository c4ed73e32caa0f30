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

from eval_pipeline.data.hub_datasets import resolve_dataset_arn
from eval_pipeline.data.sagemaker_arns import parse_arn
from eval_pipeline.errors import EvalInputError
from eval_pipeline.judging.setup import suite_judge_metrics
from eval_pipeline.sdk.evaluation_launch import (
    ConfiguredEvaluator,
    Launch,
    check_name,
    dataset_uri,
    executions,
    launch,
    mlflow_tracking_uri,
    output_root,
    validated_suite,
)
from eval_pipeline.sdk.evaluation_launch import dagster_url as resolve_dagster_url
from eval_pipeline.sdk.execution import EvaluationExecution
from eval_pipeline.sdk.models import base_model_of, describe, distinct_names, resolve_model
from eval_pipeline.suites.checks import check_suite
from eval_pipeline.suites.spec import EMBEDDED_MODEL, ModelSpec

EVALUATOR = "llm_as_judge"
DEFAULT_SUITE_NAME = "llm_as_judge"
ModelArg = ModelSpec | dict[str, Any] | str


class LLMAsJudgeEvaluator(ConfiguredEvaluator):
    """Evaluate ``model`` (and optionally ``base_model``, compared item by item) with an LLM judge.

    The arguments become a suite; building the evaluator validates all of it (models, dataset, metrics, ranges)
    before anything runs, so a typo is an error here, not after the answers were paid for.

    Args:
        model: The model to evaluate (the fine-tuned one when ``base_model`` is given). A Bedrock model id
            (``"amazon.nova-lite-v1:0"``), inference-profile id or ARN; a Nova JumpStart name
            (``"nova-textgeneration-lite"``, served by the Bedrock cross-region inference profile of the session's
            region: ``us.amazon.nova-lite-v1:0`` in us-east-1); a SageMaker model package ARN
            (``"arn:aws:sagemaker:us-west-2:123456789012:model-package/my-group/3"``: its image and artifacts are
            served on a temporary endpoint created for the run and deleted after, also after a failure; one left by
            a killed run is removed by the next); ``"sagemaker:<endpoint-name>"``; a local model folder; the
            embedded model's name (``"smollm2-135m-instruct"``); a dict of ``ModelSpec`` fields for any backend
            (``{"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "qwen"}``); or a
            ``ModelSpec``. Required.
        dataset: The items: a local path or glob, an ``s3://`` URI (``"s3://bucket/gen_qa.jsonl"``), or a SageMaker
            AI Registry dataset ARN (``"arn:aws:sagemaker:us-west-2:123456789012:hub-content/AIRegistry/DataSet/
            gen-qa/1.0.1"``, read from the S3 location its hub content names); Bedrock's
            gen-QA JSONL, one ``{"prompt" (or "query"), "referenceResponse", "category"}`` object a line, or any
            format of README "Datasets". Required.
        evaluator_model: The judge, in any form ``model`` takes (``"anthropic.claude-3-5-haiku-20241022-v1:0"``).
            Default: the embedded SmolLM2-135M, which runs anywhere but judges weakly.
        builtin_metrics: Bedrock's built-in judge metrics, the ``Builtin.`` prefix optional: Correctness,
            Completeness, Faithfulness, Helpfulness, Coherence, Relevance, FollowingInstructions,
            ProfessionalStyleAndTone, Harmfulness, Stereotyping, Refusal (``["Completeness", "Faithfulness"]``).
            Default: none.
        custom_metrics: Rubric metrics in Bedrock's ``customMetricDefinition`` shape: JSON text
            (``json.dumps([{"customMetricDefinition": {...}}])``), a path to a JSON file, or a list of dicts.
            Default: none. At least one metric, built-in or custom, is needed.
        evaluate_base_model: Whether the base model is evaluated too, then compared with ``model`` (paired
            differences per metric). The base model is ``base_model``, else the one a model package was fine-tuned
            from (its container's ``BaseModel``: a Nova model through Bedrock, another JumpStart model on a
            temporary endpoint). Default: True, as the seed's; with no base model to find, only ``model`` is
            evaluated. False records ``base_model`` without evaluating it.
        base_model: The model to compare against, in any form ``model`` takes (``"amazon.nova-micro-v1:0"``).
            Default: None.
        mlflow_experiment_name: The MLflow experiment of the runs (``"my-experiment"``). Default:
            ``"eval/<name>"``.
        mlflow_resource_arn: Where the MLflow runs go: a SageMaker MLflow tracking-server ARN
            (``"arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/my-server"``) or MLflow app ARN,
            through the ``sagemaker-mlflow`` plugin (``pip install 'eval-pipeline[sagemaker]'``), or any MLflow
            tracking URI (``"http://127.0.0.1:5000"``, ``"sqlite:///mlflow.db"``). Default: None, the pipeline's
            store (``$MLFLOW_TRACKING_URI``, else the SQLite store under the state folder). In-process evaluations
            only.
        model_package_group: The model package group (a name or its ARN) that ``model``'s package belongs to
            (``"my-group"``); checked against the package and recorded with the execution. Default: None.
        model_artifact: The ``s3://`` URI of the weights to serve for a model package ``model`` instead of the
            package's own ``ModelDataUrl`` (``"s3://my-bucket/checkpoints/step-200/model.tar.gz"``). Default: None.
        output_path: A folder or ``s3://`` prefix for the Parquet tables and the Bedrock-shaped output JSONL
            (``"s3://my-bucket/eval/"``). Default: the state folder's ``outputs/`` (``$EVAL_PIPELINE_OUTPUTS``).
            On a webserver the tables stay where the deployment writes them.
        s3_output_path: The seed's name for ``output_path`` (give one, or both equal).
        name: The suite's name, which names its Dagster assets, execution ids and MLflow runs
            (``"nightly_judge"``: a letter, then letters, digits, ``_``); not a suite of ``evals/``. Default:
            ``"llm_as_judge"``.
        max_tokens: Most tokens each model writes per answer. Default: 256.
        judge_max_tokens: Most tokens the judge writes per verdict. Default: 256.
        limit: Evaluate only the dataset's first ``limit`` items (``limit=20`` for a cheap first look). Default:
            None, every item.
        pairwise: Also show the judge both models' answers side by side (both orders) and report which it prefers;
            needs ``evaluate_base_model``. Default: False.
        human_labels: Metric name to the dataset field holding a person's rating of it (``{"Correctness":
            "human_correctness"}``), to report the judge's agreement with people (accuracy, Cohen's kappa).
            Default: none.
        dagster_url: A running Dagster webserver to submit the runs to (``"http://127.0.0.1:3000"``), sharing this
            ``$EVAL_PIPELINE_HOME``. Default: ``$EVAL_PIPELINE_DAGSTER_URL``, else run in this process.
        max_error_rate: The share of failed generations or judgments (0 to 1) allowed before the execution
            fails (``0.05``). Default: 0.0, any error fails it.
        judge_verdict: How the judge's rating is read (the suite's ``judge.verdict``): ``"generate"``, the judge
            writes its reasoning and a ``Verdict: <level>`` line (shown by ``show_results(show_explanations=True)``);
            or ``"likelihood"``, each rating level is scored as the continuation of the judge's prompt and the most
            likely wins (for small local judges; the explanation lists each level's log-probability). Default:
            None, ``"likelihood"`` for a judge whose backend scores log-likelihoods in this process (the embedded
            model, ``local``), else ``"generate"``.

    Raises:
        EvalInputError: An argument the suite cannot take, naming the field (a metric, a range, the dataset).
        JudgeMetricError: An unknown built-in metric or a malformed custom metric.
        ValueError: A model string that names no model, a dataset that does not exist, a name already taken.

    Example:
        >>> evaluator = LLMAsJudgeEvaluator(
        ...     model="amazon.nova-lite-v1:0", evaluator_model="anthropic.claude-3-5-haiku-20241022-v1:0",
        ...     dataset="s3://my-bucket/gen_qa.jsonl", builtin_metrics=["Completeness", "Faithfulness"],
        ...     s3_output_path="s3://my-bucket/eval/", limit=20)
        >>> execution = evaluator.evaluate()
        >>> execution.wait(poll=5, timeout=3600)
        >>> execution.show_results(limit=10, offset=0, show_explanations=True)
    """

    def __init__(self, model: ModelArg, *, dataset: str | os.PathLike, evaluator_model: ModelArg = EMBEDDED_MODEL,
                 builtin_metrics: list[str] | None = None, custom_metrics: str | os.PathLike | list | None = None,
                 evaluate_base_model: bool | None = None, base_model: ModelArg | None = None,
                 mlflow_experiment_name: str | None = None, mlflow_resource_arn: str | None = None,
                 model_package_group: str | None = None, model_artifact: str | None = None,
                 output_path: str | None = None,
                 s3_output_path: str | None = None, name: str | None = None, max_tokens: int = 256,
                 judge_max_tokens: int = 256, limit: int | None = None, pairwise: bool = False,
                 human_labels: dict[str, str] | None = None, dagster_url: str | None = None,
                 max_error_rate: float = 0.0, judge_verdict: str | None = None) -> None:
        self.name = check_name(name or DEFAULT_SUITE_NAME)
        spec = with_model_artifact(resolve_model(model, role="model"), model_artifact)
        self.model_package_group = check_package_group(spec, model_package_group)
        base = resolve_model(base_model, role="base_model") if base_model is not None else None
        if base is None and evaluate_base_model is not False:
            base = base_model_of(spec)  # a model package's own base model (the seed's default)
        if evaluate_base_model is None:
            evaluate_base_model = base is not None
        if evaluate_base_model and base is None:
            raise ValueError("evaluate_base_model=True needs base_model= (the model to compare against), or a model "
                             "package that names its base model")
        self.evaluate_base_model = evaluate_base_model
        self.model, self.base_model = distinct_names(spec, base)
        self.evaluator_model = resolve_model(evaluator_model, role="evaluator_model")
        self.dataset_arn = os.fspath(dataset).strip() if os.fspath(dataset).strip().startswith("arn:") else None
        self.dataset = dataset_uri(resolve_dataset_arn(self.dataset_arn) if self.dataset_arn else dataset)
        self.output_path = output_root(output_path, s3_output_path)
        self.mlflow_experiment = mlflow_experiment_name or f"eval/{self.name}"
        self.dagster_url = resolve_dagster_url(dagster_url)
        self.mlflow_resource_arn = mlflow_tracking_uri(mlflow_resource_arn, self.dagster_url)
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
        """Start the evaluation and return at once.

        Each model's answers are generated and judged in a Dagster run (in a background thread of this process,
        or on ``dagster_url``), then, with a base model, the comparison runs.

        Returns:
            The started ``EvaluationExecution``: ``wait()`` to follow it, ``show_results()`` to read it.
        """
        return launch(self.suite, Launch(
            evaluator=EVALUATOR, id_prefix="llmaj", arn_kind="llm-as-judge",
            writer="eval_pipeline.sdk.LLMAsJudgeEvaluator", config=self.config(), output_path=self.output_path,
            dagster_url=self.dagster_url, mlflow_experiment=self.mlflow_experiment,
            mlflow_tracking_uri=self.mlflow_resource_arn))

    @classmethod
    def get_all(cls, region: str | None = None) -> Iterator[EvaluationExecution]:
        """Every LLM-as-judge execution recorded under this state folder, newest first.

        Args:
            region: Accepted for the seed's signature and ignored (executions are found under
                ``$EVAL_PIPELINE_HOME``).

        Returns:
            An iterator of ``EvaluationExecution``.
        """
        return executions(EVALUATOR)

    # -- display

    def config(self) -> dict[str, Any]:
        """The evaluator's settings as plain data (recorded with each execution, shown by ``repr``).

        Returns:
            A dict: name, models (``backend:model``), dataset, limit, metrics, judge settings, MLflow, outputs.
        """
        judge = self.suite.judge
        assert judge is not None
        return {
            "name": self.name, "model": describe(self.model),
            "base_model": describe(self.base_model) if self.base_model else None,
            "evaluate_base_model": self.evaluate_base_model, "evaluator_model": describe(self.evaluator_model),
            "dataset": self.dataset, "dataset_arn": self.dataset_arn, "limit": self.suite.dataset.limit,
            "metrics": self.metrics,
            "builtin_metrics": list(judge.builtin_metrics), "max_tokens": self.suite.generation.max_tokens,
            "judge_max_tokens": judge.max_tokens, "judge_verdict": judge.verdict, "pairwise": judge.pairwise,
            "human_labels": dict(judge.human_labels),
            "mlflow_experiment": self.mlflow_experiment, "mlflow_resource_arn": self.mlflow_resource_arn,
            "model_package_group": self.model_package_group, "model_artifact": self.model.model_artifact,
            "output_path": self.output_path,
            "dagster_url": self.dagster_url, "max_error_rate": self.suite.max_error_rate,
        }


def with_model_artifact(spec: ModelSpec, model_artifact: str | None) -> ModelSpec:
    """The model package served with the weights at ``model_artifact`` (an ``s3://`` URI) instead of its own."""
    if not model_artifact:
        return spec
    if spec.backend != "sagemaker_package":
        raise EvalInputError("applies to a model package ARN given as model= (its weights for the temporary "
                             f"endpoint); model is {describe(spec)}", field="model_artifact")
    if not model_artifact.startswith("s3://"):
        raise EvalInputError(f"{model_artifact!r}: give the s3:// URI of the model's artifacts", field="model_artifact")
    return spec.model_copy(update={"model_artifact": model_artifact})


def check_package_group(spec: ModelSpec, group: str | None) -> str | None:
    """The group (a name or a model-package-group ARN) when it holds ``model``'s package; recorded with the
    execution."""
    if not group:
        return None
    group_name = group.strip().rsplit("/", 1)[-1] if group.strip().startswith("arn:") else group.strip()
    package = parse_arn(spec.model or "") if spec.backend == "sagemaker_package" else None
    if package is not None and package.kind == "model-package" and len(package.path) == 2 \
            and package.path[0] != group_name:
        raise EvalInputError(f"model package {spec.model} is not in group {group_name!r}", field="model_package_group")
    return group.strip()


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
