"""Verdicts by log-likelihood, for small local judges that cannot be relied on to write a verdict line: after the
judge's prompt and ``Verdict:``, each rating level's definition is scored as the continuation, and the most likely
one per character (lm-eval's ``acc_norm`` rule, so long definitions are not penalized for their length) is the
verdict. Nothing is generated, so there is no explanation beyond the levels' log-likelihoods."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.data.schemas import JUDGMENTS
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.likelihood import LikelihoodScorer, LoglikelihoodRequest, choice_picks
from eval_pipeline.inference.likelihood_cache import with_cache
from eval_pipeline.inference.tool_text import render_prompt, typed
from eval_pipeline.judging.metric import JudgeMetric
from eval_pipeline.judging.run import JudgeStats, judge_jobs
from eval_pipeline.progress import by_parts

VERDICT_PREFIX = "Verdict:"
CHUNK_JOBS = 16


def judge_context(scorer: LikelihoodScorer, messages: Sequence[ChatMessage | Mapping[str, Any]]) -> str:
    """The judge's prompt as the model reads it (its chat template when it has one), then ``Verdict:``."""
    tokenizer = getattr(getattr(scorer, "sampler", None), "tokenizer", None)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = render_prompt(tokenizer, messages)[0]
    else:
        text = "\n\n".join(m.text for m in typed(messages)) + "\n\n"
    return f"{text}{VERDICT_PREFIX}"


def run_likelihood_judgments(samples: pd.DataFrame, generations: pd.DataFrame, metrics: Sequence[JudgeMetric],
                             scorer: LikelihoodScorer, *, judge_model: str,
                             on_progress: Callable[[int, int], None] | None = None,
                             cache: RequestCache | None = None) -> tuple[pd.DataFrame, JudgeStats]:
    """One row per generation × metric, like ``run_judgments``; a failed scoring call makes its jobs error rows.

    Each rating level's score is cached in ``cache`` (the judge cache) under the judge's identity and the exact
    context and continuation: a re-run scores nothing, and a judgment counts as cached when all its levels were."""
    jobs = judge_jobs(samples, generations, metrics, judge_model)
    pending = [job for job in jobs if job[2] is not None]
    verdicts: dict[int, dict[str, Any]] = {}
    cached_scorer = with_cache(scorer, cache)
    cached_jobs = 0
    if on_progress:
        on_progress(0, len(pending))
    for start in range(0, len(pending), CHUNK_JOBS):
        chunk = pending[start:start + CHUNK_JOBS]
        requests = [LoglikelihoodRequest(judge_context(cached_scorer.inner, request.messages), f" {definition}")
                    for _, metric, request in chunk if request is not None for definition in metric.definitions]
        scored_now = () if on_progress is None else (
            by_parts(on_progress, [len(job[1].definitions) for job in chunk], start=start, total=len(pending)),)
        try:
            scores = iter(cached_scorer.loglikelihood(requests, *scored_now))
            hits = iter(cached_scorer.last_hits)
            failure = None
        except Exception as exc:  # the chunk's judgments become error rows; the others go on
            scores, hits, failure = iter(()), iter(()), f"judge scoring failed: {type(exc).__name__}: {exc}"
        for job in chunk:
            metric = job[1]
            if failure is not None:
                verdicts[id(job)] = {"error": failure}
                continue
            scored = [next(scores) for _ in metric.definitions]
            cached = all([next(hits) for _ in metric.definitions])
            cached_jobs += cached
            level = metric.rating_scale[choice_picks(scored, list(metric.definitions))["acc_norm"]]
            logprobs = {d: round(s.logprob, 4) for d, s in zip(metric.definitions, scored, strict=True)}
            verdicts[id(job)] = {"score": metric.score(level), "label": level.definition, "cached": cached,
                                 "explanation": f"verdict by likelihood; log-probabilities: {json.dumps(logprobs)}"}
        from_cache = getattr(on_progress, "from_cache", None)
        if from_cache is not None:  # cached judgments are left out of the rate
            from_cache(sum(1 for job in chunk if verdicts[id(job)].get("cached")))
        if on_progress:
            on_progress(min(start + CHUNK_JOBS, len(pending)), len(pending))
    frame = pd.DataFrame([{**job[0], **verdicts.get(id(job), {})} for job in jobs], columns=JUDGMENTS.names)
    stats = JudgeStats(requests=len(pending), cached=cached_jobs, sent=len(pending) - cached_jobs,
                       errors=int(frame["error"].notna().sum()))
    return frame, stats
