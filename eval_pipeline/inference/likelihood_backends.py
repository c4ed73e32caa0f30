"""Building the log-likelihood scorer a model spec asks for, from its backend's declaration: the local model, or an
OpenAI-compatible server that returns prompt log-probabilities (vLLM, SageMaker-vLLM)."""

from __future__ import annotations

from eval_pipeline.inference.backend_registry import backend, likelihood_backends
from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths


def build_likelihood_scorer(suite: SuitePaths | None, spec: ModelSpec) -> LikelihoodScorer:
    declaration = backend(spec.backend)
    if declaration.likelihood is None:
        raise ValueError(f"backend {spec.backend!r} gives no log-likelihoods; these do: "
                         f"{', '.join(likelihood_backends())}")
    return declaration.likelihood(spec, suite)
