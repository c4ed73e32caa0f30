"""What a run would send before it sends anything: requests, cache hits, estimated tokens and cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from eval_pipeline.data.likelihood_formats import choice_list
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest, Sampler
from eval_pipeline.inference.cache import RequestCache, request_keys
from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.likelihood_cache import CachedLikelihoodScorer
from eval_pipeline.inference.likelihood_runner import choice_request
from eval_pipeline.inference.remote import Price
from eval_pipeline.inference.runner import build_requests

CHARS_PER_TOKEN = 4.0
"""A rough, model-independent conversion for estimates (real counts come back from the services)."""


@dataclass(frozen=True)
class JudgePlan:
    """What judging one model's answers would send: one judge request per answer × judge metric."""

    judge: str
    """The judge as its rows record it (backend:model)."""
    metrics: int
    requests: int
    cached: int
    """Requests already in the judge cache (only answers known before the run can be looked up)."""
    to_send: int
    answers_unknown: int
    """Answers not generated (nor cached) yet: their judge requests are counted as to send, since whether the judge
    cache holds them cannot be known before the answers are."""
    est_tokens_in: int
    """Estimated judge prompt tokens of the requests to send (an unknown answer counted at its full max_tokens)."""
    max_tokens_out: int
    est_cost_usd: float | None
    """Upper bound at the judge's price (None: the judge has no price)."""
    cache_checked: bool = True
    """False when the judge cache was not looked up (no judge sampler or likelihood scorer to key the requests)."""

    def note(self) -> str:
        """What a reader should know about the counts (empty when nothing)."""
        notes = []
        if self.answers_unknown:
            notes.append(f"{self.answers_unknown} answers not generated yet: their judge requests counted as to send")
        if not self.cache_checked:
            notes.append("judge cache not checked")
        return "; ".join(notes)


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
    note: str = ""
    """What a reader should know about the counts (a precomputed model's answers read from a file)."""
    judge: JudgePlan | None = None
    """The judge's requests for this model's answers, when the suite has a judge."""


def sends_requests(sampler: object) -> bool:
    """Whether the sampler's answers cost a request each (False for answers recorded beforehand: ``precomputed``
    declares ``sends_requests = False`` and reads them from a file)."""
    return bool(getattr(sampler, "sends_requests", True))


def plan_generations(samples: pd.DataFrame, model: str, sampler: Sampler, params: GenerationParams, *,
                     num_samples: int = 1, system_prompt: str | None = None, cache: RequestCache | None = None,
                     price: Price | None = None) -> GenerationPlan:
    """Requests a run would make for ``model``: those in the generation cache, those to send; a sampler that sends
    nothing (precomputed answers) has none to send."""
    requests = build_requests(samples, num_samples, system_prompt)
    if not sends_requests(sampler):
        origin = getattr(sampler, "origin", None)
        return GenerationPlan(model=model, backend=sampler.backend, requests=len(requests), cached=0, to_send=0,
                              est_tokens_in=0, max_tokens_out=0, est_cost_usd=0.0 if price else None,
                              note=f"answers read from {origin}" if origin else "answers recorded beforehand")
    keys = request_keys(sampler, params, requests)
    found = _cached(sampler, keys, cache)
    pending = {k: r for k, r in zip(keys, requests, strict=True) if k not in found}
    tokens_in = sum(estimated_tokens(r) for r in pending.values())
    tokens_out = len(pending) * params.max_tokens
    return GenerationPlan(model=model, backend=sampler.backend, requests=len(requests),
                          cached=sum(1 for k in keys if k in found), to_send=len(pending),
                          est_tokens_in=tokens_in, max_tokens_out=tokens_out,
                          est_cost_usd=price.cost(tokens_in, tokens_out) if price else None)


def known_answers(samples: pd.DataFrame, model: str, sampler: Sampler, params: GenerationParams, *,
                  num_samples: int = 1, system_prompt: str | None = None,
                  cache: RequestCache | None = None) -> pd.DataFrame:
    """The answers a run would produce, as far as they are known without sending anything: a precomputed model's
    (looked up in its file), and those in the generation cache. One row per request (``sample_id``, ``model``,
    ``sample_index``, ``output``, ``error``, ``known``); an answer not known yet has ``known`` False."""
    requests = build_requests(samples, num_samples, system_prompt)
    if not sends_requests(sampler):
        answers: list[Completion | None] = list(sampler.generate(requests, params))
    else:
        keys = request_keys(sampler, params, requests)
        found = _cached(sampler, keys, cache)
        answers = [found.get(key) for key in keys]
    return pd.DataFrame([_answer_row(model, request, answer) for request, answer in zip(requests, answers,
                                                                                         strict=True)],
                        columns=["sample_id", "model", "sample_index", "output", "error", "known"])


def estimated_tokens(request: GenerationRequest) -> int:
    """A request's prompt tokens, estimated from its characters (``CHARS_PER_TOKEN``)."""
    return round(sum(len(m.text) for m in request.messages) / CHARS_PER_TOKEN)


def _cached(sampler: Sampler, keys: list[str], cache: RequestCache | None) -> dict[str, Completion]:
    use_cache = cache is not None and getattr(sampler, "cacheable", True)
    return cache.get_many(keys) if use_cache and cache is not None else {}


def _answer_row(model: str, request: GenerationRequest, answer: Completion | None) -> dict[str, object]:
    if answer is None:
        return {"sample_id": request.sample_id, "model": model, "sample_index": request.sample_index,
                "output": None, "error": None, "known": False}
    return {"sample_id": request.sample_id, "model": model, "sample_index": request.sample_index,
            "output": answer.output, "error": answer.error, "known": True}


def plan_choice_likelihoods(samples: pd.DataFrame, model: str, backend: str, *,
                            scorer: LikelihoodScorer | None = None,
                            cache: RequestCache | None = None, target_delimiter: str = " ") -> GenerationPlan:
    """A multiple-choice suite: one scoring request per choice, nothing generated. With the ``scorer`` and the
    generation ``cache``, requests already scored count as cached (as a run would)."""
    requests = [choice_request(question, choice, target_delimiter)
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
