"""What a run would send before it sends anything: requests, cache hits, estimated tokens and cost."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.inference.cache import RequestCache, request_hash
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
    identity = sampler.identity()
    keys = [request_hash(identity, params, r) for r in requests]
    use_cache = cache is not None and getattr(sampler, "cacheable", True)
    found = cache.get_many(keys) if use_cache and cache is not None else {}
    pending = {k: r for k, r in zip(keys, requests, strict=True) if k not in found}
    tokens_in = sum(round(sum(len(m["content"]) for m in r.messages) / CHARS_PER_TOKEN) for r in pending.values())
    tokens_out = len(pending) * params.max_tokens
    return GenerationPlan(model=model, backend=sampler.backend, requests=len(requests),
                          cached=sum(1 for k in keys if k in found), to_send=len(pending),
                          est_tokens_in=tokens_in, max_tokens_out=tokens_out,
                          est_cost_usd=price.cost(tokens_in, tokens_out) if price else None)


def plan_likelihoods(samples: pd.DataFrame, model: str, backend: str, task: str) -> GenerationPlan:
    """A multiple-choice or perplexity suite: one scoring request per choice (or per text), nothing generated
    (log-likelihoods are not cached: every run scores them all)."""
    if task == "multiple_choice":
        texts = [f"{question} {choice}" for question, choices in zip(samples["input"], samples["choices"], strict=True)
                 for choice in json.loads(choices or "[]")]
    else:
        texts = list(samples["input"])
    tokens_in = sum(round(len(text) / CHARS_PER_TOKEN) for text in texts)
    return GenerationPlan(model=model, backend=backend, requests=len(texts), cached=0, to_send=len(texts),
                          est_tokens_in=tokens_in, max_tokens_out=0, est_cost_usd=None)
