"""The ``[suite, generations]`` asset: inference, one partition per model."""

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import preview
from eval_pipeline.inference.backends import build_sampler, generation_params
from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
from eval_pipeline.inference.likelihood_cache import with_cache
from eval_pipeline.inference.likelihood_runner import run_choice_likelihoods, run_text_likelihoods
from eval_pipeline.inference.runner import run_generations
from eval_pipeline.progress import Progress
from eval_pipeline.resources.generation_cache import GenerationCacheResource
from eval_pipeline.suites.spec import ModelSpec, Suite


def inference_pool(suite: Suite) -> str:
    """The Dagster pool of a suite's inference step: one per backend, so concurrent runs and backfills that call
    the same service share one limit (set it with ``dagster instance concurrency set inference-bedrock 2``)."""
    backends = {m.backend for m in suite.models} | ({suite.watch.backend} if suite.watch else set())
    return f"inference-{backends.pop()}" if len(backends) == 1 else "inference-mixed"


def build_generations_asset(suite: Suite, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    gen, params = suite.generation, generation_params(suite)

    @dg.asset(key=[suite.suite, "generations"], group_name=suite.suite, partitions_def=partitions,
              pool=inference_pool(suite),
              ins={"samples": dg.AssetIn(key=[suite.suite, "samples"])}, kinds={"parquet"},
              description="One row per sample × model × sample index: output, tokens, latency, errors.")
    def generations(context: dg.AssetExecutionContext, samples: pd.DataFrame,
                    generation_cache: GenerationCacheResource) -> dg.Output[pd.DataFrame]:
        model = suite.model(context.partition_key)
        if suite.task != "generate":
            return _likelihoods(context, suite, model, samples, generation_cache)
        sampler = build_sampler(suite, model, samples)
        cache = generation_cache.open()
        progress = Progress(f"{suite.suite}/{model.name} generation", context.log.info)
        try:
            frame, stats = run_generations(samples, model.name, sampler, params, num_samples=gen.num_samples,
                                           system_prompt=gen.system_prompt, cache=cache, on_progress=progress)
        finally:
            progress.close()
            if cache is not None:
                cache.close()
        context.log.info(f"generation for {model.name}: {stats.summary()}")
        return dg.Output(frame, metadata={
            "requests": stats.requests, "cached": stats.cached, "generated": stats.generated,
            "errors": stats.errors, "tokens_in": stats.tokens_in, "tokens_out": stats.tokens_out,
            "cost_usd": stats.cost_usd if stats.cost_usd is not None else 0.0,
            "latency_p50_s": float(frame["latency_s"].median()) if len(frame) else 0.0,
            "backend": model.backend,
            "preview": preview(frame, ["sample_id", "sample_index", "output", "finish_reason", "cached", "error"]),
        })

    return generations


def _likelihoods(context: dg.AssetExecutionContext, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
                 generation_cache: GenerationCacheResource) -> dg.Output[pd.DataFrame]:
    """Multiple-choice and perplexity suites: log-likelihoods instead of generated answers (cached like them)."""
    cache = generation_cache.open()
    scorer = with_cache(build_likelihood_scorer(suite, model), cache, log=context.log.info)
    progress = Progress(f"{suite.suite}/{model.name} log-likelihoods", context.log.info)
    run = run_choice_likelihoods if suite.task == "multiple_choice" else run_text_likelihoods
    try:
        frame = run(samples, model.name, scorer, on_progress=progress)
    finally:
        progress.close()
        if cache is not None:
            cache.close()
    stats = scorer.stats
    context.log.info(f"log-likelihoods for {model.name}: {stats.requests} scoring requests, {stats.cached} from "
                     f"cache, {stats.sent} scored")
    return dg.Output(frame, metadata={
        "requests": stats.requests, "cached": stats.cached, "generated": stats.sent,
        "errors": int(frame["error"].notna().sum()),
        "task": suite.task, "items": len(frame), "backend": model.backend,
        "preview": preview(frame, ["sample_id", "output", "error"]),
    })
