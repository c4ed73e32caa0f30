"""The backends a model spec can name. Each backend declares itself beside its sampler as a ``BACKEND`` object (its
builder, the spec keys it needs, its temperature range, what it can do) and is registered here by import path, so
naming the backends never imports a sampler module, and loading a declaration never imports torch or calls AWS.

A plugin adds a backend through the entry point group ``eval_pipeline.backends`` (``name = "pkg.mod:BACKEND"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eval_pipeline.registry import Registry

if TYPE_CHECKING:
    from eval_pipeline.inference.base import Sampler
    from eval_pipeline.inference.likelihood import LikelihoodScorer
    from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths

SamplerBuilder = Callable[["ModelSpec", "SuitePaths | None", Any], "Sampler"]
"""(the model's spec, the suite it belongs to if any, the dataset's samples table if any) → its sampler."""
LikelihoodBuilder = Callable[["ModelSpec", "SuitePaths | None"], "LikelihoodScorer"]


@dataclass(frozen=True)
class SpecKey:
    """A key of the model spec a backend cannot do without, and what to put there."""

    key: str
    meaning: str


@dataclass(frozen=True)
class Backend:
    """One backend: how to build its sampler from a model spec, what that spec must hold, and what it can do."""

    name: str
    build: SamplerBuilder
    needs: tuple[SpecKey, ...] = ()
    temperature: tuple[float, float | None] = (0.0, None)
    """The sampling temperatures it accepts (low, high; None: unbounded), checked when a suite loads."""
    remote: bool = False
    """A service reached over the network: concurrency, timeouts, retries and a price apply; checked before use."""
    likelihood: LikelihoodBuilder | None = None
    """Builds its log-likelihood scorer, for backends that return log-probabilities of given text."""
    tools: bool = False
    """Its sampler takes ``tools=`` and returns tool calls."""
    batch: bool = False
    """It accepts ``mode: batch`` (an offline batch-inference job)."""
    model_files: bool = False
    """Its ``model`` names model files: a folder, or a URI ``model_files`` fetches (``s3://``, ``models:/``,
    ``runs:/``), whose form is checked when a suite loads."""

    @property
    def likelihoods(self) -> bool:
        return self.likelihood is not None

    def missing(self, spec: ModelSpec) -> str | None:
        """Why ``spec`` cannot be served by this backend (the first key it lacks), or None."""
        for need in self.needs:
            if not getattr(spec, need.key, None):
                article = "an" if self.name[:1].lower() in "aeiou" else "a"
                return f"{article} {self.name} model needs '{need.key}': {need.meaning}"
        return None

    def temperature_problem(self, temperature: float) -> str | None:
        """Why this backend cannot sample at ``temperature``, or None."""
        low, high = self.temperature
        if temperature < low or (high is not None and temperature > high):
            allowed = f"{low:g} to {high:g}" if high is not None else f"at least {low:g}"
            return f"temperature {temperature:g} is outside the {self.name} backend's range ({allowed})"
        return None


BACKEND_REGISTRY: Registry[Backend] = Registry("backend", "eval_pipeline.backends")
for _name, _path in (
    ("local", "eval_pipeline.inference.local:BACKEND"),
    ("precomputed", "eval_pipeline.inference.precomputed:BACKEND"),
    ("recorded", "eval_pipeline.inference.recorded:BACKEND"),
    ("bedrock", "eval_pipeline.inference.bedrock:BACKEND"),
    ("sagemaker", "eval_pipeline.inference.sagemaker:BACKEND"),
    ("sagemaker_package", "eval_pipeline.inference.sagemaker_package:BACKEND"),
    ("openai", "eval_pipeline.inference.openai_compat:BACKEND"),
    ("vllm", "eval_pipeline.inference.vllm:BACKEND"),
):
    BACKEND_REGISTRY.register(_name, _path)


def backend(name: str) -> Backend:
    """The declaration registered as ``name`` (``UnknownEntryError`` with a close match for an unknown one)."""
    entry = BACKEND_REGISTRY.get(name)
    if not isinstance(entry, Backend):
        raise TypeError(f"backend {name!r} is registered as {type(entry).__name__}, not a Backend declaration")
    return entry


def backend_names() -> tuple[str, ...]:
    return BACKEND_REGISTRY.names()


def remote_backends() -> tuple[str, ...]:
    return tuple(name for name in backend_names() if backend(name).remote)


def likelihood_backends() -> tuple[str, ...]:
    return tuple(name for name in backend_names() if backend(name).likelihoods)


def batch_backends() -> tuple[str, ...]:
    return tuple(name for name in backend_names() if backend(name).batch)


def temperature_ranges() -> dict[str, tuple[float, float | None]]:
    return {name: backend(name).temperature for name in backend_names()}
