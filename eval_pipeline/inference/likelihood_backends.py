"""Building the log-likelihood scorer a model spec asks for: the local model, or an OpenAI-compatible server that
returns prompt log-probabilities (vLLM, SageMaker-vLLM)."""

from __future__ import annotations

from eval_pipeline.inference.backends import model_location
from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths


def build_likelihood_scorer(suite: SuitePaths, spec: ModelSpec) -> LikelihoodScorer:
    if spec.backend == "local":
        from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
        from eval_pipeline.inference.local import LocalSampler

        sampler = LocalSampler(model_location(spec, suite), batch_size=spec.batch_size, device=spec.device,
                               dtype=spec.dtype)
        return LocalLikelihoodScorer(sampler, batch_size=spec.batch_size)
    from eval_pipeline.inference.likelihood_openai import OpenAICompletionsScorer

    return OpenAICompletionsScorer(spec.base_url or "", spec.model or "", api_key_env=spec.api_key_env,
                                   n_concurrent=spec.n_concurrent, timeout_s=spec.timeout_s,
                                   max_attempts=spec.max_attempts, prefix=spec.likelihood_prefix)
