"""Building the sampler a model spec asks for."""

from __future__ import annotations

import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.inference.model_spec import BACKENDS, REMOTE_BACKENDS, ModelSpec, SuitePaths
from eval_pipeline.inference.prices import load_price_table
from eval_pipeline.inference.remote import Price, RetryPolicy


def build_sampler(suite: SuitePaths, spec: ModelSpec, samples: pd.DataFrame) -> Sampler:
    """The sampler for one model of a suite; ``samples`` feeds the precomputed backend."""
    if spec.backend == "local":
        from eval_pipeline.inference.local import LocalSampler

        return LocalSampler(model_location(spec, suite), batch_size=spec.batch_size,
                            device=spec.device, dtype=spec.dtype)
    if spec.backend == "precomputed":
        from eval_pipeline.inference.precomputed import PrecomputedSampler

        if spec.responses:
            return PrecomputedSampler.from_file(suite.resolve_uri(spec.responses))
        return PrecomputedSampler.from_dataset(samples, spec.model_identifier)
    if spec.backend in REMOTE_BACKENDS:
        sampler = build_remote_sampler(spec, suite)
        sampler.preflight()
        return sampler
    raise EvalInputError(f"unknown backend {spec.backend!r}; known backends: {', '.join(BACKENDS)}",
                         file=suite.source_path, field=f"models.{spec.name}.backend")


def build_remote_sampler(spec: ModelSpec, suite: SuitePaths | None = None) -> Sampler:
    """A bedrock, sagemaker, openai or vllm sampler with the model's concurrency, timeout, retries and price."""
    options = {
        "n_concurrent": spec.n_concurrent, "timeout_s": spec.timeout_s,
        "retry": RetryPolicy(max_attempts=spec.max_attempts),
        "price": model_price(spec),
    }
    if spec.backend == "bedrock":
        from eval_pipeline.inference.bedrock import BedrockSampler

        online = BedrockSampler(spec.model or "", region=spec.region, **options)
        if spec.mode == "batch":
            from eval_pipeline.inference.bedrock_batch import BedrockBatchSampler

            return BedrockBatchSampler(spec.model or "", s3_uri=spec.batch_s3_uri or "",
                                       role_arn=spec.batch_role_arn or "", region=spec.region,
                                       poll_s=spec.batch_poll_s, min_records=spec.batch_min_records,
                                       price=options["price"], online=online)
        return online
    if spec.backend == "sagemaker":
        from eval_pipeline.inference.sagemaker import SageMakerSampler

        return SageMakerSampler(spec.endpoint or "", request_format=spec.request_format,
                                request_template=spec.request_template, response_path=spec.response_path,
                                inference_component=spec.inference_component, region=spec.region,
                                model=spec.model, **options)
    if spec.backend == "vllm":
        from eval_pipeline.inference.vllm import VllmSampler

        return VllmSampler(model_location(spec, suite), server_args=spec.server_args,
                           startup_timeout_s=spec.server_startup_timeout_s, **options)
    from eval_pipeline.inference.openai_compat import OpenAISampler

    return OpenAISampler(spec.base_url or "", spec.model or "", api_key_env=spec.api_key_env, **options)


def model_location(spec: ModelSpec, suite: SuitePaths | None) -> str:
    """A local model directory (relative to the project root) if there is one, else the name as given."""
    model = spec.model or ""
    local_path = suite.resolve_path(model) if suite is not None else None
    return str(local_path) if local_path is not None and local_path.exists() else model


def model_price(spec: ModelSpec) -> Price | None:
    """The model's own price, else its entry in the shared price table (``$EVAL_PIPELINE_PRICES``)."""
    if spec.price:
        return Price(spec.price.input_per_1m, spec.price.output_per_1m)
    table = load_price_table()
    return table.get(spec.model or "") or table.get(spec.endpoint or "")


def generation_params(suite: SuitePaths) -> GenerationParams:
    gen = suite.generation
    return GenerationParams(max_tokens=gen.max_tokens, temperature=gen.temperature, top_p=gen.top_p, seed=gen.seed,
                            stop=tuple(gen.stop))
