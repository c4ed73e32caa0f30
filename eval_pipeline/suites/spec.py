"""The typed shape of a suite file. Unknown keys are errors, so a misspelling never passes silently."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SUITE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
BACKENDS = ("local", "precomputed")
DATASET_FORMATS = ("auto", "gen_qa", "bedrock", "messages")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """Where the items come from: a path, a glob or an ``s3://`` URI, and their format."""

    uri: str
    format: Literal["auto", "gen_qa", "bedrock", "messages"] = "auto"
    limit: int | None = Field(default=None, ge=1)


class ModelSpec(_Strict):
    """One model under evaluation; its ``name`` is its Dagster partition key."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    backend: str = "local"
    model: str | None = None
    responses: str | None = None
    model_identifier: str | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: int = Field(default=8, ge=1)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown backend {value!r}; known backends: {', '.join(BACKENDS)}")
        return value

    @model_validator(mode="after")
    def _needs_model(self) -> ModelSpec:
        if self.backend == "local" and not self.model:
            raise ValueError("a local model needs 'model': a directory, a Hugging Face id, or "
                             "'smollm2-135m-instruct' for the embedded model")
        return self


class GenerationSpec(_Strict):
    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    num_samples: int = Field(default=1, ge=1)
    seed: int = 0
    system_prompt: str | None = None


class ScorerSpec(_Strict):
    """A deterministic scorer; ``name`` is the metric name, ``type`` the scorer (defaults to the name)."""

    name: str = Field(pattern=NAME_PATTERN)
    type: str | None = None
    pattern: str | None = None
    ignore_case: bool = True

    @property
    def kind(self) -> str:
        return self.type or self.name


class WatchSpec(_Strict):
    """A folder where new model checkpoints (one directory each) are registered as partitions and evaluated."""

    dir: str
    backend: Literal["local"] = "local"


class Suite(_Strict):
    suite: str = Field(pattern=SUITE_NAME_PATTERN, max_length=63)
    description: str = ""
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(min_length=1)
    generation: GenerationSpec = GenerationSpec()
    scorers: list[ScorerSpec] = Field(default_factory=lambda: [ScorerSpec(name="exact_match")])
    breakdown_keys: list[str] = Field(default_factory=list)
    max_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    watch: WatchSpec | None = None
    schedule: str | None = "0 2 * * *"
    source_path: str | None = None
    base_dir: str | None = None

    @field_validator("scorers", mode="before")
    @classmethod
    def _scorer_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        for label, names in (("models", [m.name for m in self.models]),
                             ("scorers", [s.name for s in self.scorers])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{label}: duplicate names {duplicates}")
        return self

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        watched = self.watched_model(name)
        if watched is not None:
            return watched
        known = ", ".join(m.name for m in self.models)
        raise KeyError(f"suite {self.suite!r} has no model {name!r} (known: {known})")

    def watched_model(self, name: str) -> ModelSpec | None:
        """A checkpoint directory in the watched folder, as a model spec; None if there is none."""
        if self.watch is None or not re.match(NAME_PATTERN, name):
            return None
        folder = self.resolve_path(self.watch.dir) / name
        if not folder.is_dir():
            return None
        return ModelSpec(name=name, backend=self.watch.backend, model=str(folder))

    def resolve_path(self, value: str) -> Path:
        """A path from the suite, relative paths taken from the project root (the folder holding ``evals/``)."""
        path = Path(value).expanduser()
        if path.is_absolute() or self.base_dir is None:
            return path
        return Path(self.base_dir) / path

    def resolve_uri(self, uri: str) -> str:
        return uri if "://" in uri else str(self.resolve_path(uri))
