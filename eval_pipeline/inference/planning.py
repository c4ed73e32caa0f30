"""What a run would send before it sends anything: requests, cache hits, estimated tokens and cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from eval_pipeline.data.likelihood_formats import choice_list
from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.inference.cache import RequestCache, request_keys
from eval_pipeline.inference.likelihood import LikelihoodScorer, LoglikelihoodRequest
from eval_pipeline.inference.likelihood_cache import CachedLikelihoodScorer
from eval_pipeline.inference.likelihood_runner import choice_context
from eval_pipeline.inference.remote import Price
from eval_pipeline.inference.runner import build_requests

CHARS_PER_TOKEN = 4.0
"""A rough, model-independent conversion for estimates (real counts come back from the services)."""


@dataclass(frozen=True)
class GenerationPlan:
    model: str
    backend: str
    requests: int
    cached: int
    to_send: int
    est_tokens_in: int
    max_tokens_out: int
    est_cost_usd: float | None
    """Upper bound: every request to send at its estimated input and the full max_tokens of output."""


def plan_generations(samples: pd.DataFrame, model: str, sampler: Sampler, params: GenerationParams, *,
                     num_samples: int = 1, system_prompt: str | None = None, cache: RequestCache | None = None,
                     price: Price | None = None) -> GenerationPlan:
    requests = build_requests(samples, num_samples, system_prompt)
    keys = request_keys(sampler, params, requests)
    use_cache = cache is not None and getattr(sampler, "cacheable", True)
    found = cache.get_many(keys) if use_cache and cache is not None else {}
    pending = {k: r for k, r in zip(keys, requests, strict=True) if k not in found}
    tokens_in = sum(round(sum(len(m.text) for m in r.messages) / CHARS_PER_TOKEN) for r in pending.values())
    tokens_out = len(pending) * params.max_tokens
    return GenerationPlan(model=model, backend=sampler.backend, requests=len(requests),
                          cached=sum(1 for k in keys if k in found), to_send=len(pending),
                          est_tokens_in=tokens_in, max_tokens_out=tokens_out,
                          est_cost_usd=price.cost(tokens_in, tokens_out) if price else None)


def plan_choice_likelihoods(samples: pd.DataFrame, model: str, backend: str, *,
                            scorer: LikelihoodScorer | None = None,
                            cache: RequestCache | None = None) -> GenerationPlan:
    """A multiple-choice suite: one scoring request per choice, nothing generated. With the ``scorer`` and the
    generation ``cache``, requests already scored count as cached (as a run would)."""
    requests = [LoglikelihoodRequest(choice_context(question), choice)
                for question, choices in zip(samples["input"], samples["choices"], strict=True)
                for choice in choice_list(choices)]
    texts = [r.context + r.continuation for r in requests]
    return _plan_scoring(model, backend, texts, scorer, cache,
                         lambda probe: [probe.loglikelihood_key(r) for r in requests])


def plan_text_likelihoods(samples: pd.DataFrame, model: str, backend: str, *,
                          scorer: LikelihoodScorer | None = None,
                          cache: RequestCache | None = None) -> GenerationPlan:
    """A perplexity suite: one rolling scoring request per text, nothing generated (cached ones counted)."""
    texts = list(samples["input"])
    return _plan_scoring(model, backend, texts, scorer, cache, lambda probe: [probe.rolling_key(t) for t in texts])


def _plan_scoring(model: str, backend: str, texts: list[str], scorer: LikelihoodScorer | None,
                  cache: RequestCache | None,
                  keys_of: Callable[[CachedLikelihoodScorer], list[str]]) -> GenerationPlan:
    cached: set[int] = set()
    if scorer is not None and cache is not None:
        keys = keys_of(CachedLikelihoodScorer(scorer, None))
        stored = cache.get_scores(keys)
        cached = {i for i, key in enumerate(keys) if key in stored}
    pending = [text for i, text in enumerate(texts) if i not in cached]
    tokens_in = sum(round(len(text) / CHARS_PER_TOKEN) for text in pending)
    return GenerationPlan(model=model, backend=backend, requests=len(texts), cached=len(cached),
                          to_send=len(pending), est_tokens_in=tokens_in, max_tokens_out=0, est_cost_usd=None)
