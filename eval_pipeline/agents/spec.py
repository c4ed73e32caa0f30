"""What a rollout suite declares: the environment (or agent service) and the rollout hyperparameters.

The hyperparameters carry the names of SageMaker's multi-turn RL evaluator (``eval_group_size``,
``sampling_temperature``, ``top_p``, ``max_tokens``, ``pass_k_values``, ``success_threshold``) and its
``stopping_condition``; their ranges are checked when the suite loads.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from eval_pipeline.agents.registry import ENVIRONMENTS
from eval_pipeline.inference.model_spec import ModelSpec

MAX_STOPPING_CONDITION_S = 259_200
"""The longest time budget an evaluation may have: 72 hours (the seed's limit)."""
MAX_GROUP_SIZE = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EnvironmentSpec(_Strict):
    """The environment the agent is rolled out in, by kind (``python``, ``agentcore``, ``lambda`` or a plugin's).

    python: ``path`` is ``module:Class`` (importable, or relative to the project root); ``options`` are passed to
    it. agentcore: ``arn`` of the runtime and its ``qualifier``. lambda: ``arn`` or ``function`` (a name). For an
    agent service, ``verifier`` names the scorer that rewards its last reply against the task's reference; without
    one the service's own reward counts."""

    kind: str = "python"
    path: str | None = None
    arn: str | None = None
    function: str | None = None
    verifier: str | None = None
    qualifier: str | None = None
    region: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=120.0, gt=0.0)
    """The longest one call to the environment or agent service may take."""
    max_attempts: int = Field(default=6, ge=1)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        """An environment kind the registry knows (checked here so the error names ``environment.kind``)."""
        if value not in ENVIRONMENTS:
            raise ValueError(ENVIRONMENTS.unknown(value))
        return value


class RolloutSpec(_Strict):
    """The rollout hyperparameters."""

    eval_group_size: int = Field(default=4, ge=1, le=MAX_GROUP_SIZE)
    """Rollouts per task: the n of pass@k and pass^k."""
    sampling_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    """The most tokens the model may write in one turn."""
    pass_k_values: list[int] = Field(default_factory=lambda: [1])
    success_threshold: float = 1.0
    """A rollout succeeds when its reward is at least this."""
    max_turns: int = Field(default=8, ge=1, le=500)
    """The most agent turns in one rollout; a rollout that reaches it ends with termination ``max_turns``."""
    call_timeout_s: float = Field(default=600.0, gt=0.0)
    """The longest one call (the model's turn, an environment step, the user's reply) may take; a call past it
    ends the rollout with termination ``timeout``."""
    concurrency: int = Field(default=8, ge=1, le=1024)
    stopping_condition: int = Field(default=86_400, gt=0, le=MAX_STOPPING_CONDITION_S)
    """The whole evaluation's time budget in seconds; rollouts not started by then are error rows (``budget``)."""
    seed: int = 0

    @field_validator("pass_k_values")
    @classmethod
    def _positive_unique(cls, values: list[int], info: ValidationInfo) -> list[int]:
        if not values:
            raise ValueError("pass_k_values needs at least one k")
        if any(k < 1 for k in values):
            raise ValueError(f"pass_k_values must be positive integers, got {values}")
        if len(set(values)) != len(values):
            raise ValueError(f"pass_k_values has duplicates: {values}")
        group = info.data.get("eval_group_size")  # absent when it failed its own check
        too_big = [k for k in values if group is not None and k > group]
        if too_big:
            raise ValueError(f"pass_k_values {too_big} exceed eval_group_size {group}: pass@k needs at least k "
                             f"rollouts per task")
        return sorted(values)

    @field_validator("success_threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("success_threshold must be a finite number")
        return value


class UserSimulatorSpec(_Strict):
    """An LLM that plays the user from each task's ``user_instructions`` (for conversational tasks)."""

    model: ModelSpec
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    instructions_field: str = "user_instructions"

    @field_validator("model", mode="before")
    @classmethod
    def _user_name(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" not in value:
            return {"name": "user", **value}
        return value


AgentMode = Literal["policy", "service"]
