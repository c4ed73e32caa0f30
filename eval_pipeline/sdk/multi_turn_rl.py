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

    ``model`` / ``base_model``: a ``ModelSpec``, a dict of its fields, or a string (``eval_pipeline.sdk.models``).
    ``dataset``: the tasks (a local path, glob or ``s3://`` URI; one row per task, see README "Agents").
    ``agent_config``: an AgentCore runtime ARN, a Lambda ARN or function name, ``"module:Class"`` for a local
    Python environment, or a dict of environment fields (``eval_pipeline.sdk.agent_config``); ``agent_qualifier``
    is the AgentCore endpoint (ignored, with a warning, for any other kind).
    ``stopping_condition``: the whole evaluation's time budget in seconds, in (0, 259200].
    ``hyperparameters``: initial values of ``.hyperparameters`` (e.g. ``{"eval_group_size": 8}``).
    ``mlflow_run_name``: each model's MLflow run is named ``<mlflow_run_name>/<model>`` (default
    ``<suite>/<model>``). ``tags``: ``[{"Key": …, "Value": …}]`` set on every Dagster run and MLflow run.
    ``output_path`` (alias ``s3_output_path``), ``dagster_url``, ``max_error_rate``, ``limit``, ``name``: as for
    ``LLMAsJudgeEvaluator``.
    """

    def __init__(self, model: ModelArg, *, dataset: str | os.PathLike, agent_config: Any,
                 agent_qualifier: str | None = None, evaluate_base_model: bool = False,
                 base_model: ModelArg | None = None, stopping_condition: int = DEFAULT_STOPPING_CONDITION,
                 mlflow_experiment_name: str | None = None, mlflow_run_name: str | None = None,
                 output_path: str | None = None, s3_output_path: str | None = None,
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
        self.max_error_rate = max_error_rate
        self.breakdown_keys = list(breakdown_keys or [])
        self._hyperparameters = RolloutHyperparameters(dict(hyperparameters or {}), check=self._check_rollout)
        self.suite = self._suite(self._hyperparameters.spec(stopping_condition=self.stopping_condition))

    # -- the suite

    @property
    def hyperparameters(self) -> RolloutHyperparameters:
        """The rollout hyperparameters: attribute read and write (each assignment validated by type and range,
        and against the whole suite), ``to_dict()``, ``get_info()``; a change applies to the next ``evaluate()``."""
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
        """Start the rollouts with the current hyperparameters and return at once; ``wait()`` on the execution."""
        self.suite = self._suite(self._hyperparameters.spec(stopping_condition=self.stopping_condition))
        return launch(self.suite, Launch(
            evaluator=EVALUATOR, id_prefix="mtrl", arn_kind="multi-turn-rl",
            writer="eval_pipeline.sdk.MultiTurnRLEvaluator", config=self.config(), output_path=self.output_path,
            dagster_url=self.dagster_url, mlflow_experiment=self.mlflow_experiment,
            run_tags=tracking_tags(self.tags, self.mlflow_run_name), bedrock_outputs=False))

    @classmethod
    def get_all(cls, session: Any = None, region: str | None = None) -> Iterator[EvaluationExecution]:
        """Every multi-turn RL execution recorded under this state folder, newest first (``session`` and
        ``region`` are accepted for the seed's signature and ignored)."""
        return executions(EVALUATOR)

    @staticmethod
    def list_bedrock_agentcore_runtimes(session: Any = None) -> list[dict[str, Any]]:
        """The account's AgentCore runtimes (the control plane's ListAgentRuntimes, every page), each
        ``{"name", "runtime_id", "arn", "status"}``; ``session``: a boto3 Session (default credential chain)."""
        from eval_pipeline.agents.runtimes import list_bedrock_agentcore_runtimes

        return list_bedrock_agentcore_runtimes(session)

    @staticmethod
    def list_supported_models(session: Any = None) -> list[str]:
        """What can be rolled out as the policy of a local environment: the embedded model names first, then one
        line per backend whose declaration says its sampler calls tools, ``"<backend>: <key> = <meaning>; …"``
        (what a model dict for it needs). An agent service (AgentCore, Lambda) runs its own model: any model
        string is passed to it. ``session`` is accepted for the seed's signature and ignored (nothing is listed
        remotely)."""
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
        """The evaluator's settings as plain data (recorded with each execution)."""
        return {
            "name": self.name, "shape": self.shape, "model": describe(self.model),
            "base_model": describe(self.base_model) if self.base_model else None,
            "evaluate_base_model": self.evaluate_base_model, "dataset": self.dataset, "limit": self.limit,
            "environment": self.environment.model_dump(exclude_none=True),
            "stopping_condition": self.stopping_condition, "hyperparameters": self._hyperparameters.to_dict(),
            "mlflow_experiment": self.mlflow_experiment, "mlflow_run_name": self.mlflow_run_name,
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
