"""Turning samples into the ``generations`` table: cache look-up, generation of what is missing, bookkeeping."""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from eval_pipeline.data.messages import ToolSpec
from eval_pipeline.data.schemas import GENERATIONS
from eval_pipeline.inference.base import (
    Completion,
    GenerationParams,
    GenerationRequest,
    Sampler,
    request_messages,
)
from eval_pipeline.inference.cache import RequestCache, request_keys
from eval_pipeline.inference.send_once import SendOnce, send_once

CHUNK_REQUESTS = 64
"""Requests a batch-generating sampler runs between two cache writes: what a killed run can lose at most."""


@dataclass(frozen=True)
class GenerationStats:
    requests: int
    cached: int
    generated: int
    errors: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    """Spent by this run's requests (cached rows cost nothing now); None when the backend has no price."""

    def summary(self) -> str:
        return (f"{self.requests} requests: {self.cached} from cache, {self.generated} generated, "
                f"{self.errors} errors")


def build_requests(samples: pd.DataFrame, num_samples: int, system_prompt: str | None, *,
                   tools: Sequence[ToolSpec] = ()) -> list[GenerationRequest]:
    """One request per sample and sample index, in sample order, each offering ``tools`` (none by default)."""
    offered = tuple(tools)
    return [
        GenerationRequest(sample_id=sample_id, sample_index=index,
                          messages=request_messages(text, kind, system_prompt), tools=offered)
        for sample_id, text, kind in zip(samples["sample_id"], samples["input"], samples["input_kind"], strict=True)
        for index in range(num_samples)
    ]


@dataclass
class Completed:
    """What ``complete_requests`` returns: every request's key and completion, and which came from the cache."""

    keys: list[str]
    results: dict[str, Completion]
    cached: set[str]
    sent: int

    def completion(self, index: int) -> Completion:
        return self.results[self.keys[index]]


def complete_requests(requests: list[GenerationRequest], sampler: Sampler, params: GenerationParams, *,
                      cache: RequestCache | None = None,
                      on_progress: Callable[[int, int], None] | None = None,
                      coordination: SendOnce | None = None,
                      log: Callable[[str], None] | None = None) -> Completed:
    """A completion for every request: from the cache when there, else from the sampler (each saved as it comes,
    so a killed run loses at most one chunk). Identical requests (same key: sampler identity, parameters, messages,
    sample index and the request fields the sampler declares) are sent once, also across concurrent runs sharing
    the cache (``send_once``: another run's requests are waited for, and count as cached). Failures are never
    cached."""
    keys = request_keys(sampler, params, requests)
    use_cache = cache is not None and getattr(sampler, "cacheable", True)
    found = cache.get_many(keys) if use_cache and cache is not None else {}
    results: dict[str, Completion] = dict(found)
    cached = set(found)
    by_key = {k: r for k, r in zip(keys, requests, strict=True) if k not in found}
    total, done = len(requests), len([k for k in keys if k in found])
    counts = collections.Counter(keys)
    if on_progress:
        on_progress(done, total)

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if on_progress:
            on_progress(min(done, total), total)

    store_to = cache if use_cache else None
    sent = 0

    def send(chosen: list[str]) -> None:
        nonlocal sent
        missing = [(key, by_key[key]) for key in chosen]
        sent += len(missing)
        stream = getattr(sampler, "stream", None)
        if missing and stream is not None:  # remote completions arrive one by one: each saved the moment it arrives
            for index, completion in stream([r for _, r in missing], params):
                _store([(missing[index][0], completion)], results, store_to)
                advance(counts[missing[index][0]])
        elif missing:
            size = getattr(sampler, "chunk_requests", CHUNK_REQUESTS)
            for start in range(0, len(missing), size):
                chunk = missing[start:start + size]
                completions = sampler.generate([r for _, r in chunk], params, advance)
                _store(list(zip([k for k, _ in chunk], completions, strict=True)), results, store_to)
                advance(sum(counts[k] - 1 for k, _ in chunk))  # duplicates of what was just sent

    def arrived(stored: set[str]) -> None:
        assert cache is not None
        got = cache.get_many(stored)
        results.update(got)
        cached.update(got)
        advance(sum(counts[k] for k in got))

    if store_to is not None and by_key:
        send_once(store_to, list(by_key), send, on_arrived=arrived, coordination=coordination,
                  log=log or getattr(on_progress, "log", None))
    else:
        send(list(by_key))
    return Completed(keys=keys, results=results, cached=cached, sent=sent)


def run_generations(samples: pd.DataFrame, model: str, sampler: Sampler, params: GenerationParams, *,
                    num_samples: int = 1, system_prompt: str | None = None, cache: RequestCache | None = None,
                    on_progress: Callable[[int, int], None] | None = None,
                    ) -> tuple[pd.DataFrame, GenerationStats]:
    """Generate every missing completion; ``on_progress(done, total)`` reports requests finished."""
    requests = build_requests(samples, num_samples, system_prompt)
    done = complete_requests(requests, sampler, params, cache=cache, on_progress=on_progress)
    row_hashes = dict(zip(samples["sample_id"], samples["row_hash"], strict=True))
    rows = [_row(request, key, done.results[key], model, row_hashes[request.sample_id], key in done.cached)
            for key, request in zip(done.keys, requests, strict=True)]
    frame = pd.DataFrame(rows, columns=GENERATIONS.names)
    stats = GenerationStats(
        requests=len(requests), cached=len([k for k in done.keys if k in done.cached]), generated=done.sent,
        errors=int(frame["error"].notna().sum()),
        tokens_in=int(frame["tokens_in"].fillna(0).sum()), tokens_out=int(frame["tokens_out"].fillna(0).sum()),
        cost_usd=_spent(frame))
    return frame, stats


def _spent(frame: pd.DataFrame) -> float | None:
    fresh = frame.loc[~frame["cached"].astype(bool), "cost_usd"].dropna()
    return float(fresh.sum()) if len(fresh) else None


def _store(pairs: list[tuple[str, Completion]], results: dict[str, Completion], cache: RequestCache | None) -> None:
    results.update(pairs)
    if cache is not None:
        cache.put_many(pairs)


def _row(request: GenerationRequest, key: str, completion: Completion, model: str, row_hash: str,
         cached: bool) -> dict[str, object]:
    return {
        "sample_id": request.sample_id,
        "model": model,
        "sample_index": request.sample_index,
        "output": completion.output,
        "finish_reason": completion.finish_reason,
        "tokens_in": completion.tokens_in,
        "tokens_out": completion.tokens_out,
        "latency_s": completion.latency_s,
        "cost_usd": completion.cost_usd,
        "request_hash": key,
        "row_hash": row_hash,
        "cached": cached,
        "error": completion.error,
    }


def generation_usage(frame: pd.DataFrame) -> dict[str, float]:
    """Totals of a generations table: requests, errors, tokens, cost and latency percentiles."""
    latency = frame["latency_s"].dropna()
    usage = {"requests": float(len(frame)), "errors": float(frame["error"].notna().sum()),
             "tokens_in": float(frame["tokens_in"].fillna(0).sum()),
             "tokens_out": float(frame["tokens_out"].fillna(0).sum()),
             "cost_usd": float(frame["cost_usd"].fillna(0).sum())}
    if len(latency):
        usage |= {"latency_p50_s": float(latency.quantile(0.5)), "latency_p95_s": float(latency.quantile(0.95))}
    return usage
