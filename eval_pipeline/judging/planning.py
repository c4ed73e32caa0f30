"""What judging would send before anything is sent: one judge request per answer × judge metric, those already in
the judge cache, and an estimate of tokens and cost (``eval-pipeline run --dry-run``)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from eval_pipeline.inference.base import GenerationParams, GenerationRequest, Sampler
from eval_pipeline.inference.cache import RequestCache, request_keys
from eval_pipeline.inference.likelihood import LikelihoodScorer, LoglikelihoodRequest
from eval_pipeline.inference.likelihood_cache import CachedLikelihoodScorer
from eval_pipeline.inference.planning import JudgePlan, estimated_tokens
from eval_pipeline.inference.remote import Price
from eval_pipeline.judging.likelihood_verdicts import judge_context
from eval_pipeline.judging.metric import JudgeMetric
from eval_pipeline.judging.run import Job, judge_jobs


def plan_judgments(samples: pd.DataFrame, answers: pd.DataFrame, metrics: Sequence[JudgeMetric],
                   sampler: Sampler | None, params: GenerationParams, *, judge_model: str,
                   cache: RequestCache | None = None, price: Price | None = None,
                   answer_max_tokens: int = 0, likelihood: LikelihoodScorer | None = None) -> JudgePlan:
    """The judge requests for ``answers`` (``inference.planning.known_answers``: one row per answer, ``known``
    False for an answer not generated yet). A known answer's requests are built exactly as judging builds them
    (``judging.run.judge_jobs``) and looked up in the judge ``cache``; a failed answer has nothing to judge. An
    unknown answer's requests are counted as to send, its prompt estimated with an answer of ``answer_max_tokens``.
    A ``likelihood`` judge (``verdict: likelihood``, no ``sampler``) scores each rating level after the prompt and
    writes nothing: a judgment is cached when every level's score is (as ``run_likelihood_judgments`` counts it),
    and no output tokens are counted. Its keys need the judge's chat template, so a local judge's tokenizer and
    model are loaded when there is a known answer to look up (nothing is scored)."""
    known = answers[answers["known"]]
    unknown = answers[~answers["known"]]
    jobs = judge_jobs(samples, known, metrics, judge_model)
    requests = [request for _, _, request in jobs if request is not None]
    found: set[str] = set()
    pending = requests
    if sampler is not None and cache is not None and getattr(sampler, "cacheable", True) and requests:
        keys = request_keys(sampler, params, requests)
        found = set(cache.get_many(keys))
        pending = [request for key, request in zip(keys, requests, strict=True) if key not in found]
    elif likelihood is not None and cache is not None and requests:
        pending = _uncached_levels(jobs, likelihood, cache)
    placeholders = [request for _, _, request in judge_jobs(samples, unknown.assign(output=""), metrics, judge_model)
                    if request is not None]
    tokens_in = (sum(estimated_tokens(r) for r in pending)
                 + sum(estimated_tokens(r) + answer_max_tokens for r in placeholders))
    to_send = len(pending) + len(placeholders)
    tokens_out = to_send * params.max_tokens if likelihood is None else 0  # a likelihood verdict writes nothing
    return JudgePlan(judge=judge_model, metrics=len(metrics), requests=len(requests) + len(placeholders),
                     cached=len(requests) - len(pending), to_send=to_send, answers_unknown=len(unknown),
                     est_tokens_in=tokens_in, max_tokens_out=tokens_out,
                     est_cost_usd=price.cost(tokens_in, tokens_out) if price else None,
                     cache_checked=sampler is not None or likelihood is not None)


def _uncached_levels(jobs: list[Job], scorer: LikelihoodScorer, cache: RequestCache) -> list[GenerationRequest]:
    """The requests of likelihood judgments not wholly in the judge cache (every rating level's score needed)."""
    probe = CachedLikelihoodScorer(scorer, None)
    levels = [(request, [probe.loglikelihood_key(LoglikelihoodRequest(judge_context(scorer, request.messages),
                                                                       f" {definition}"))
                         for definition in metric.definitions])
              for _, metric, request in jobs if request is not None]
    stored = cache.get_scores([key for _, keys in levels for key in keys])
    return [request for request, keys in levels if not all(key in stored for key in keys)]
