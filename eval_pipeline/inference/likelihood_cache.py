"""Log-likelihood scores through the request cache: a scorer wrapper that looks each request up, scores only what
is missing (identical requests once, also across concurrent runs: ``send_once``), and stores what it scored.

A key covers the scorer's identity, the kind of request and its text(s), and the result's field names (a new
field makes new keys, never a half-filled old row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from eval_pipeline.inference.cache import RequestCache, payload_hash
from eval_pipeline.inference.likelihood import ContinuationScore, LikelihoodScorer, LoglikelihoodRequest, TextScore
from eval_pipeline.inference.send_once import SendOnce, send_once

_S = TypeVar("_S", ContinuationScore, TextScore)


@dataclass
class ScoringStats:
    """Scoring requests asked for, served from the cache (or by another run), and sent to the model."""

    requests: int = 0
    cached: int = 0
    sent: int = 0


class CachedLikelihoodScorer:
    """A ``LikelihoodScorer`` over another, with ``cache`` in front; ``last_hits`` says, per request of the last
    call, whether it came from the cache; ``stats`` counts every call's requests."""

    def __init__(self, inner: LikelihoodScorer, cache: RequestCache | None, *,
                 coordination: SendOnce | None = None, log: Callable[[str], None] | None = None) -> None:
        self.inner, self.cache, self.coordination, self.log = inner, cache, coordination, log
        self.backend = inner.backend
        self.stats = ScoringStats()
        self.last_hits: list[bool] = []
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = self.inner.identity()
        return self._identity

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      on_progress: Callable[[int], None] | None = None) -> list[ContinuationScore]:
        if self.cache is None:
            return self._uncached(self.inner.loglikelihood(requests, *_progress(on_progress)))
        keys = [self.loglikelihood_key(r) for r in requests]
        return self._scored(keys, list(requests), ContinuationScore,
                            lambda chosen: self.inner.loglikelihood(chosen, *_progress(on_progress)))

    def rolling_loglikelihood(self, texts: Sequence[str],
                              on_progress: Callable[[int], None] | None = None) -> list[TextScore]:
        if self.cache is None:
            return self._uncached(self.inner.rolling_loglikelihood(texts, *_progress(on_progress)))
        keys = [self.rolling_key(text) for text in texts]
        return self._scored(keys, list(texts), TextScore,
                            lambda chosen: self.inner.rolling_loglikelihood(chosen, *_progress(on_progress)))

    def loglikelihood_key(self, request: LoglikelihoodRequest) -> str:
        """The cache key of scoring ``request.continuation`` after ``request.context`` with this scorer."""
        return self._key("loglikelihood", ContinuationScore, context=request.context,
                         continuation=request.continuation)

    def rolling_key(self, text: str) -> str:
        """The cache key of the rolling log-likelihood of ``text`` with this scorer."""
        return self._key("rolling", TextScore, text=text)

    def _key(self, kind: str, result: type, **texts: str) -> str:
        return payload_hash({"scorer": self.identity(), "kind": kind, "fields": [f.name for f in fields(result)],
                             **texts})

    def _uncached(self, scores: list[_S]) -> list[_S]:
        self.last_hits = [False] * len(scores)
        self.stats.requests += len(scores)
        self.stats.sent += len(scores)
        return scores

    def _scored(self, keys: list[str], items: list[Any], result: type[_S],
                score: Callable[[list[Any]], list[_S]]) -> list[_S]:
        found: dict[str, _S] = {}
        if self.cache is not None:
            found = {k: result(**v) for k, v in self.cache.get_scores(keys).items()}
        hits = set(found)
        by_key = {k: item for k, item in zip(keys, items, strict=True) if k not in found}

        def send(chosen: list[str]) -> None:
            scores = score([by_key[k] for k in chosen])
            found.update(zip(chosen, scores, strict=True))
            self.stats.sent += len(chosen)
            if self.cache is not None:
                self.cache.put_scores((k, asdict(s)) for k, s in zip(chosen, scores, strict=True))

        def arrived(stored: set[str]) -> None:
            assert self.cache is not None
            got = {k: result(**v) for k, v in self.cache.get_scores(stored).items()}
            found.update(got)
            hits.update(got)

        if self.cache is not None and by_key:
            send_once(self.cache, list(by_key), send, on_arrived=arrived, coordination=self.coordination,
                      log=self.log)
        elif by_key:
            send(list(by_key))
        self.last_hits = [k in hits for k in keys]
        self.stats.requests += len(keys)
        self.stats.cached += sum(self.last_hits)
        return [found[k] for k in keys]

    def __getattr__(self, name: str) -> Any:
        """Anything else (the local scorer's ``sampler``, ``tokenizer``) is the inner scorer's."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _progress(on_progress: Callable[[int], None] | None) -> tuple[Callable[[int], None], ...]:
    """The progress argument to pass on: none when there is none (scorers may not take one)."""
    return () if on_progress is None else (on_progress,)


def with_cache(scorer: LikelihoodScorer, cache: RequestCache | None, *,
               log: Callable[[str], None] | None = None) -> CachedLikelihoodScorer:
    """``scorer`` behind ``cache`` (counting requests even without one); an already wrapped scorer is re-wrapped
    around its inner scorer."""
    inner = scorer.inner if isinstance(scorer, CachedLikelihoodScorer) else scorer
    return CachedLikelihoodScorer(inner, cache, log=log)
