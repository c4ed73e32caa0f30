"""``MultiTurnRLEvaluator``: the SageMaker SDK's multi-turn RL evaluator on this pipeline.

The arguments become a ``task: rollout`` suite (the models, the prompt dataset, the environment or agent service,
the rollout hyperparameters); constructing the evaluator validates the whole suite, environment included, before
anything runs. Three shapes, as in the seed:

- base only: ``model=`` alone;
- fine-tuned only: ``model=`` (the fine-tuned model) with ``base_model=`` recorded but not evaluated;
- comparison: ``evaluate_base_model=True`` with ``base_model=``: both models in one suite, the base model as its
  ``baseline``, both MLflow runs in one experiment, then the suite's comparison (paired differences of reward and
  success per task).

``evaluate()`` launches the suite as ``LLMAsJudgeEvaluator`` does (``sdk.evaluation_launch``) and returns an
``EvaluationExecution``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from eval_pipeline.agents.spec import EnvironmentSpec, RolloutSpec
from eval_pipeline.errors import EvalInputError
from eval_pipeline.sdk.agent_config import environment_spec
from eval_pipeline.sdk.evaluation_launch import (
    ConfiguredEvaluator,
    Launch,
    check_name,
    dataset_uri,
    executions,
    launch,
    mlflow_tracking_uri,
    output_root,
    tracking_tags,
    user_tags,
    validated_suite,
)
from eval_pipeline.sdk.evaluation_launch import dagster_url as resolve_dagster_url
from eval_pipeline.sdk.execution import EvaluationExecution
from eval_pipeline.sdk.hyperparameters import RolloutHyperparameters
from eval_pipeline.sdk.models import describe, distinct_names, resolve_model
from eval_pipeline.suites.spec import ModelSpec, Suite

EVALUATOR = "multi_turn_rl"
DEFAULT_SUITE_NAME = "multi_turn_rl"
DEFAULT_STOPPING_CONDITION = 86_400
ModelArg = ModelSpec | dict[str, Any] | str
SHAPES = ("base_only", "fine_tuned_only", "comparison")


class MultiTurnRLEvaluator(ConfiguredEvaluator):
    """Roll out ``model`` (and ``base_model`` with ``evaluate_base_model=True``) against ``agent_config``.

    The arguments become a ``task: rollout`` suite, validated whole when the evaluator is built (the environment
    imports or the ARN has its shape, the temperature fits each model's backend, ``pass_k_values`` ≤
    ``eval_group_size``), before anything runs. ``shape`` says which of the seed's three shapes it is.

    Args:
        model: The model rolled out (the fine-tuned one when ``base_model`` is given), in any form
            ``LLMAsJudgeEvaluator`` takes: a Bedrock id (``"amazon.nova-micro-v1:0"``), ``"sagemaker:<endpoint>"``,
            a local folder, the embedded model's name, a dict of ``ModelSpec`` fields, a ``ModelSpec``. An agent
            service (AgentCore, Lambda) runs its own model and is passed this string. Required.
        dataset: The tasks: a local path, glob or ``s3://`` URI, one JSON object a line with ``id``, ``prompt``
            and the environment's fields (``"examples/data/agents/calculator.jsonl"``). Required.
        agent_config: The environment or agent: an AgentCore runtime ARN
            (``"arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/my-agent"``), a Lambda function ARN or
            name (``"my-agent"``, ``"my-agent:prod"``), ``"package.module:Class"`` for a local Python environment
            (``"examples.environments.calculator:CalculatorEnvironment"``), or a dict of environment fields
            (``{"kind": "python", "path": "..."}``). Required.
        agent_qualifier: The AgentCore endpoint (``"PROD"``). Default: None, the runtime's ``DEFAULT``; ignored,
            with a warning, for any other kind of agent.
        evaluate_base_model: Whether ``base_model`` is rolled out too, then compared with ``model`` (paired
            differences of reward and success per task). Default: False (the seed's): ``base_model`` is then
            recorded only.
        base_model: The model to compare against, in any form ``model`` takes. Default: None.
        stopping_condition: The whole evaluation's time budget in seconds, in (0, 259200]; rollouts not started
            by then are error rows (``3600``). Default: 86400.
        mlflow_experiment_name: The MLflow experiment of both models' runs and the comparison's (``"agents"``).
            Default: ``"eval/<name>"``.
        mlflow_run_name: Each model's MLflow run is named ``<mlflow_run_name>/<model>`` (``"nightly"``).
            Default: None, the tracking layer's name: the model and when its run started.
        mlflow_resource_arn: Where the MLflow runs go: a SageMaker MLflow tracking-server ARN (needs the
            ``sagemaker-mlflow`` plugin) or any MLflow tracking URI (``"http://127.0.0.1:5000"``). Default: None,
            the pipeline's store. In-process evaluations only.
        output_path: A folder or ``s3://`` prefix for the Parquet tables (``"s3://my-bucket/mtrl/"``). Default:
            the state folder's ``outputs/``.
        s3_output_path: The seed's name for ``output_path`` (give one, or both equal).
        tags: ``[{"Key": "team", "Value": "agents"}]`` (or a plain dict), set on every Dagster run and every MLflow
            run; keys starting with ``dagster/``, ``eval_pipeline/`` or ``mlflow.`` are reserved. Default: none.
        name: The suite's name (``"calculator_agents"``: a letter, then letters, digits, ``_``); not a suite of
            ``evals/``. Default: ``"multi_turn_rl"``.
        limit: Roll out only the dataset's first ``limit`` tasks (``limit=5``). Default: None, every task.
        dagster_url: A running Dagster webserver to submit the runs to, sharing this ``$EVAL_PIPELINE_HOME``.
            Default: ``$EVAL_PIPELINE_DAGSTER_URL``, else run in this process.
        max_error_rate: The share of errored rollouts (0 to 1) allowed before the execution fails. Default: 0.0.
        breakdown_keys: Dataset fields to report the metrics per value of (``["difficulty"]``). Default: none.
        hyperparameters: Initial values of ``.hyperparameters`` (``{"eval_group_size": 8, "pass_k_values": [1, 4,
            8]}``): eval_group_size (4), sampling_temperature (0.7), top_p (1.0), max_tokens (256), pass_k_values
            ([1]), success_threshold (1.0), max_turns (8), call_timeout_s (600), concurrency (8), seed (0).
            Default: those defaults.

    Raises:
        EvalInputError: An argument the suite cannot take, naming the field (a hyperparameter's range, the agent).
        ValueError: A model string that names no model, a dataset that does not exist, a name already taken.

    Example:
        >>> evaluator = MultiTurnRLEvaluator(
        ...     model="amazon.nova-micro-v1:0", dataset="examples/data/agents/calculator.jsonl",
        ...     agent_config="examples.environments.calculator:CalculatorEnvironment",
        ...     hyperparameters={"eval_group_size": 4, "pass_k_values": [1, 4]})
        >>> execution = evaluator.evaluate()
        >>> execution.wait()
        >>> execution.show_results()
    """

    def __init__(self, model: ModelArg, *, dataset: str | os.PathLike, agent_config: Any,
                 agent_qualifier: str | None = None, evaluate_base_model: bool = False,
                 base_model: ModelArg | None = None, stopping_condition: int = DEFAULT_STOPPING_CONDITION,
                 mlflow_experiment_name: str | None = None, mlflow_run_name: str | None = None,
                 mlflow_resource_arn: str | None = None, output_path: str | None = None,
                 s3_output_path: str | None = None,
                 tags: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None, name: str | None = None,
                 limit: int | None = None, dagster_url: str | None = None, max_error_rate: float = 0.0,
                 breakdown_keys: Sequence[str] | None = None,
                 hyperparameters: Mapping[str, Any] | None = None) -> None:
        self.name = check_name(name or DEFAULT_SUITE_NAME)
        if evaluate_base_model and base_model is None:
            raise ValueError("evaluate_base_model=True needs base_model= (the model to compare against)")
        self.evaluate_base_model = bool(evaluate_base_model)
        spec = resolve_model(model, role="model")
        base = resolve_model(base_model, role="base_model") if base_model is not None else None
        self.model, self.base_model = distinct_names(spec, base)
        self.shape = "comparison" if self.evaluate_base_model else "fine_tuned_only" if base else "base_only"
        self.stopping_condition = _stopping_condition(stopping_condition)
        self.environment: EnvironmentSpec = environment_spec(agent_config, agent_qualifier)
        self.agent_qualifier = self.environment.qualifier
        self.dataset = dataset_uri(dataset)
        self.limit = limit
        self.output_path = output_root(output_path, s3_output_path)
        self.mlflow_experiment = mlflow_experiment_name or f"eval/{self.name}"
        self.mlflow_run_name = (mlflow_run_name or "").strip() or None
        self.tags = user_tags(tags)
        self.dagster_url = resolve_dagster_url(dagster_url)
        self.mlflow_resource_arn = mlflow_tracking_uri(mlflow_resource_arn, self.dagster_url)
        self.max_error_rate = max_error_rate
        self.breakdown_keys = list(breakdown_keys or [])
        self._hyperparameters = RolloutHyperparameters(dict(hyperparameters or {}), check=self._check_rollout)
        self.suite = self._suite(self._hyperparameters.spec(stopping_condition=self.stopping_condition))

    # -- the suite

    @property
    def hyperparameters(self) -> RolloutHyperparameters:
        """The rollout hyperparameters: attribute read and write (``evaluator.hyperparameters.eval_group_size = 8``,
        each assignment validated by type and range, and against the whole suite), ``update()``, ``to_dict()``,
        ``get_info()``; a change applies to the next ``evaluate()``."""
        return self._hyperparameters

    @property
    def models(self) -> list[ModelSpec]:
        """The models evaluated, the base model first in the comparison shape."""
        return [m for m in (self.base_model if self.evaluate_base_model else None, self.model) if m is not None]

    def _suite(self, rollout: RolloutSpec) -> Suite:
        return validated_suite({
            "suite": self.name,
            "description": f"Multi-turn RL evaluation ({self.shape}) created by eval_pipeline.sdk.MultiTurnRLEvaluator",
            "task": "rollout",
            "dataset": {"uri": self.dataset, "limit": self.limit},
            "models": self.models,
            "environment": self.environment,
            "rollout": rollout,
            "baseline": self.base_model.name if self.evaluate_base_model and self.base_model else None,
            "breakdown_keys": self.breakdown_keys,
            "mlflow_experiment": self.mlflow_experiment,
            "max_error_rate": self.max_error_rate,
            "schedule": None,
        })

    def _check_rollout(self, rollout: RolloutSpec) -> None:
        """A hyperparameter change is taken only if the whole suite still passes its checks."""
        self._suite(rollout.model_copy(update={"stopping_condition": self.stopping_condition}))

    # -- running

    def evaluate(self) -> EvaluationExecution:
        """Start the rollouts with the current hyperparameters and return at once.

        Returns:
            The started ``EvaluationExecution``: ``wait()`` to follow it, ``show_results()`` for the rollouts (reward,
            success, turns, how each ended), the metrics (pass@k, pass^k, mean reward) and the comparison.
        """
        self.suite = self._suite(self._hyperparameters.spec(stopping_condition=self.stopping_condition))
        return launch(self.suite, Launch(
            evaluator=EVALUATOR, id_prefix="mtrl", arn_kind="multi-turn-rl",
            writer="eval_pipeline.sdk.MultiTurnRLEvaluator", config=self.config(), output_path=self.output_path,
            dagster_url=self.dagster_url, mlflow_experiment=self.mlflow_experiment,
            run_tags=tracking_tags(self.tags, self.mlflow_run_name), bedrock_outputs=False,
            mlflow_tracking_uri=self.mlflow_resource_arn))

    @classmethod
    def get_all(cls, session: Any = None, region: str | None = None) -> Iterator[EvaluationExecution]:
        """Every multi-turn RL execution recorded under this state folder, newest first.

        Args:
            session: Accepted for the seed's signature and ignored.
            region: Accepted for the seed's signature and ignored.

        Returns:
            An iterator of ``EvaluationExecution``.
        """
        return executions(EVALUATOR)

    @staticmethod
    def list_bedrock_agentcore_runtimes(session: Any = None) -> list[dict[str, Any]]:
        """The account's AgentCore runtimes (the control plane's ListAgentRuntimes, every page).

        Args:
            session: A boto3 ``Session``. Default: None, the default credential chain and region.

        Returns:
            A list of ``{"name", "runtime_id", "arn", "status"}``.
        """
        from eval_pipeline.agents.runtimes import list_bedrock_agentcore_runtimes

        return list_bedrock_agentcore_runtimes(session)

    @staticmethod
    def list_supported_models(session: Any = None) -> list[str]:
        """What can be rolled out as the policy of a local environment.

        An agent service (AgentCore, Lambda) runs its own model: any model string is passed to it.

        Args:
            session: Accepted for the seed's signature and ignored (nothing is listed remotely).

        Returns:
            The embedded model names first, then one line per backend whose declaration says its sampler calls
            tools, ``"<backend>: <key> = <meaning>; …"`` (what a model dict for it needs).
        """
        from eval_pipeline.inference.backend_registry import backend, backend_names
        from eval_pipeline.inference.embedded import EMBEDDED_MODELS

        lines = list(EMBEDDED_MODELS)
        for name in backend_names():
            declaration = backend(name)
            if declaration.tools:
                needs = "; ".join(f"{need.key} = {need.meaning}" for need in declaration.needs)
                lines.append(f"{name}: {needs}" if needs else name)
        return lines

    # -- display

    def config(self) -> dict[str, Any]:
        """The evaluator's settings as plain data (recorded with each execution, shown by ``repr``).

        Returns:
            A dict: name, shape, models, dataset, environment, hyperparameters, MLflow, tags, outputs.
        """
        return {
            "name": self.name, "shape": self.shape, "model": describe(self.model),
            "base_model": describe(self.base_model) if self.base_model else None,
            "evaluate_base_model": self.evaluate_base_model, "dataset": self.dataset, "limit": self.limit,
            "environment": self.environment.model_dump(exclude_none=True),
            "stopping_condition": self.stopping_condition, "hyperparameters": self._hyperparameters.to_dict(),
            "mlflow_experiment": self.mlflow_experiment, "mlflow_run_name": self.mlflow_run_name,
            "mlflow_resource_arn": self.mlflow_resource_arn,
            "tags": dict(self.tags), "output_path": self.output_path, "dagster_url": self.dagster_url,
            "max_error_rate": self.max_error_rate, "breakdown_keys": list(self.breakdown_keys),
        }


def _stopping_condition(value: Any) -> int:
    """Seconds in (0, 259200], an int (RolloutSpec's own range, strictly typed)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise EvalInputError(f"stopping_condition must be a whole number of seconds, not {value!r}",
                             field="stopping_condition")
    field = RolloutSpec.model_fields["stopping_condition"]
    try:
        RolloutSpec(stopping_condition=value)
    except ValueError:
        bounds = {type(m).__name__: m for m in field.metadata}
        low, high = bounds["Gt"].gt, bounds["Le"].le
        raise EvalInputError(f"stopping_condition {value} is outside ({low}, {high}] seconds",
                             field="stopping_condition") from None
    return value
