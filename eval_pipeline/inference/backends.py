"""Building the sampler a model spec asks for, from its backend's declaration (``backend_registry``)."""

from __future__ import annotations

import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_options import model_location, model_price, remote_options  # noqa: F401
from eval_pipeline.inference.backend_registry import BACKEND_REGISTRY, backend
from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths


def build_sampler(suite: SuitePaths, spec: ModelSpec, samples: pd.DataFrame) -> Sampler:
    """The sampler for one model of a suite (a remote one checked before use); ``samples`` feeds precomputed."""
    if spec.backend not in BACKEND_REGISTRY:
        raise EvalInputError(BACKEND_REGISTRY.unknown(spec.backend), file=suite.source_path,
                             field=f"models.{spec.name}.backend")
    declaration = backend(spec.backend)
    sampler = declaration.build(spec, suite, samples)
    if declaration.remote:
        sampler.preflight()
    return sampler


def build_remote_sampler(spec: ModelSpec, suite: SuitePaths | None = None) -> Sampler:
    """A remote backend's sampler (bedrock, sagemaker, openai, vllm, …) with the model's concurrency, timeout,
    retries and price, not yet checked against its service."""
    declaration = backend(spec.backend)
    if not declaration.remote:
        raise ValueError(f"backend {spec.backend!r} is not a remote backend")
    return declaration.build(spec, suite, None)


def generation_params(suite: SuitePaths) -> GenerationParams:
    gen = suite.generation
    return GenerationParams(max_tokens=gen.max_tokens, temperature=gen.temperature, top_p=gen.top_p, seed=gen.seed,
                            stop=tuple(gen.stop))
