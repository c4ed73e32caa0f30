"""Judge asks answered by likelihood (``judge.verdict: likelihood``), for small local judges that cannot be relied on
to write a verdict line: each rating level's label is scored as the continuation of the judge's prompt and
``Verdict:``, and the most likely per character wins, as for generations (``judging.likelihood_verdicts``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.likelihood import LikelihoodScorer, LoglikelihoodRequest, choice_picks
from eval_pipeline.inference.likelihood_cache import with_cache
from eval_pipeline.judging.likelihood_verdicts import CHUNK_JOBS, judge_context
from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, JudgeAsk


@dataclasses.dataclass
class LikelihoodCounts:
    requests: int = 0
    cached: int = 0


def likelihood_results(asks: Sequence[JudgeAsk], scorer: LikelihoodScorer, *, label: str,
                       cache: RequestCache | None = None, counts: LikelihoodCounts | None = None,
                       on_progress: Callable[[int], None] | None = None) -> dict[int, EvaluationResult]:
    """Each ask's result by ``id(ask)``; a failed scoring call makes its chunk's asks error rows."""
    cached_scorer = with_cache(scorer, cache)
    counts = counts if counts is not None else LikelihoodCounts()
    results: dict[int, EvaluationResult] = {}
    for start in range(0, len(asks), CHUNK_JOBS):
        chunk = asks[start:start + CHUNK_JOBS]
        requests = [LoglikelihoodRequest(judge_context(cached_scorer.inner, ask.messages), f" {definition}")
                    for ask in chunk for definition in ask.metric.definitions]
        try:
            scores, hits, failure = iter(cached_scorer.loglikelihood(requests)), iter(cached_scorer.last_hits), None
        except Exception as exc:  # this chunk's asks become error rows; the others go on
            scores, hits, failure = iter(()), iter(()), f"judge scoring failed: {type(exc).__name__}: {exc}"
        for ask in chunk:
            base = EvaluationResult(ask.evaluator_id, ask.evaluator_name, ask.level, ask.target,
                                    ignored_reference_fields=ask.ignored_reference_fields, judge_model=label)
            counts.requests += 1
            if failure is not None:
                results[id(ask)] = dataclasses.replace(base, error_code=ErrorCode.JUDGE_FAILED.value, error=failure)
                continue
            definitions = list(ask.metric.definitions)
            scored = [next(scores) for _ in definitions]
            cached = all([next(hits) for _ in definitions])
            counts.cached += cached
            level = ask.metric.rating_scale[choice_picks(scored, definitions)["acc_norm"]]
            score = ask.metric.score(level)
            logprobs = {d: round(s.logprob, 4) for d, s in zip(definitions, scored, strict=True)}
            results[id(ask)] = dataclasses.replace(
                base, value=float(level.value) if ask.metric.float_scale else score, score=score,
                label=level.definition, cached=cached,
                explanation=f"verdict by likelihood; log-probabilities: {json.dumps(logprobs)}")
        if on_progress is not None:
            on_progress(len(chunk))
    return results
