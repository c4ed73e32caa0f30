"""Calling remote inference services: bounded concurrency, retries with jittered back-off, adaptive throttling.

A remote backend implements one attempt (``call``) and says whether a failure is worth retrying by raising
``TransientError`` or ``PermanentError``; ``RemoteSampler.generate`` does the rest. A request that still fails
becomes an error row (never an exception that loses the others, never a made-up answer).
"""

from __future__ import annotations

import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest, ProgressCallback


class TransientError(Exception):
    """A failure that may go away: throttling, 5xx, a timeout, a dropped connection."""

    def __init__(self, reason: str, *, throttled: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.throttled, self.retry_after_s = throttled, retry_after_s


class PermanentError(Exception):
    """A failure that retrying cannot fix: a bad request, an unknown model, an unparseable answer."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter; a server's retry hint (Retry-After) wins when it gives one."""

    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay_s(self, attempt: int, hint_s: float | None, rng: random.Random) -> float:
        if hint_s is not None:
            return min(max(hint_s, 0.0), self.max_delay_s) * rng.uniform(1.0, 1.2)
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2 ** attempt))


@dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_1m: float
    output_per_1m: float

    def cost(self, tokens_in: int | None, tokens_out: int | None) -> float | None:
        if tokens_in is None and tokens_out is None:
            return None
        return ((tokens_in or 0) * self.input_per_1m + (tokens_out or 0) * self.output_per_1m) / 1e6


class AdaptiveLimit:
    """How many requests may be in flight: cut to ``backoff`` of itself on throttling (at most once per cool-down),
    grown back by one per ``limit`` successes, never above the configured concurrency (AIMD; the cut is CUBIC's and
    the AWS SDKs' adaptive mode's 0.7-ish rather than TCP's halving, which starves a service throttling at random)."""

    def __init__(self, ceiling: int, cooldown_s: float = 1.0, backoff: float = 0.75) -> None:
        self.ceiling, self.cooldown_s, self.backoff = ceiling, cooldown_s, backoff
        self.limit = float(ceiling)
        self.in_flight = 0
        self._last_cut = 0.0
        self._condition = threading.Condition()

    def __enter__(self) -> AdaptiveLimit:
        with self._condition:
            self._condition.wait_for(lambda: self.in_flight < max(1, int(self.limit)))
            self.in_flight += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._condition:
            self.in_flight -= 1
            self._condition.notify_all()

    def throttled(self) -> None:
        with self._condition:
            now = time.monotonic()
            if now - self._last_cut >= self.cooldown_s:
                self.limit = max(1.0, self.limit * self.backoff)
                self._last_cut = now

    def succeeded(self) -> None:
        with self._condition:
            if self.limit < self.ceiling:
                self.limit = min(float(self.ceiling), self.limit + 1.0 / max(self.limit, 1.0))
                self._condition.notify_all()


class RemoteSampler(ABC):
    """The shared machinery of remote backends; subclasses implement ``call`` and ``identity``."""

    backend = "remote"

    def __init__(self, *, n_concurrent: int = 8, timeout_s: float = 60.0, retry: RetryPolicy | None = None,
                 price: Price | None = None, seed: int = 0) -> None:
        self.n_concurrent, self.timeout_s = n_concurrent, timeout_s
        self.retry = retry or RetryPolicy()
        self.price = price
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What changes the outputs: backend and model (part of the cache key)."""

    @abstractmethod
    def call(self, request: GenerationRequest, params: GenerationParams) -> Completion:
        """One attempt; raises TransientError or PermanentError on failure."""

    def preflight(self) -> None:
        """Checks that need no request (credentials, configuration); raises EvalInputError before any work."""
        return None

    def check(self, requests: Sequence[GenerationRequest]) -> None:
        """Raise EvalInputError for requests this backend cannot send as asked (before any is sent)."""
        return None

    def prepare(self) -> None:
        """Called once before requests go out, in the calling thread: build shared clients here."""
        return None

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: ProgressCallback | None = None) -> list[Completion]:
        """Every request, ``n_concurrent`` at a time at most, in request order."""
        results: list[Completion | None] = [None] * len(requests)
        for index, completion in self.stream(requests, params):
            results[index] = completion
            if on_progress is not None:
                on_progress(1)
        return [r if r is not None else Completion.failed("not attempted") for r in results]

    def stream(self, requests: Sequence[GenerationRequest],
               params: GenerationParams) -> Iterator[tuple[int, Completion]]:
        """(request index, completion) as each finishes, so callers can save results as they come."""
        self.check(requests)
        self.prepare()
        limit = AdaptiveLimit(self.n_concurrent)
        with ThreadPoolExecutor(max_workers=self.n_concurrent, thread_name_prefix=self.backend) as pool:
            futures = {pool.submit(self._with_retries, request, params, limit): index
                       for index, request in enumerate(requests)}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                for future in futures:
                    future.cancel()

    def _with_retries(self, request: GenerationRequest, params: GenerationParams,
                      limit: AdaptiveLimit) -> Completion:
        started = time.perf_counter()
        for attempt in range(self.retry.max_attempts):
            try:
                with limit:
                    completion = self.call(request, params)
            except TransientError as exc:
                if exc.throttled:
                    limit.throttled()
                if attempt + 1 == self.retry.max_attempts:
                    return Completion.failed(f"{self.backend}: gave up after {attempt + 1} attempts: {exc}",
                                             time.perf_counter() - started)
                with self._rng_lock:
                    pause = self.retry.delay_s(attempt, exc.retry_after_s, self._rng)
                time.sleep(pause)
                continue
            except PermanentError as exc:
                return Completion.failed(f"{self.backend}: {exc}", time.perf_counter() - started)
            except Exception as exc:  # an unexpected failure is one error row, not a lost run
                return Completion.failed(f"{self.backend}: {type(exc).__name__}: {exc}",
                                         time.perf_counter() - started)
            limit.succeeded()
            completion.latency_s = time.perf_counter() - started
            if self.price is not None and completion.cost_usd is None:
                completion.cost_usd = self.price.cost(completion.tokens_in, completion.tokens_out)
            return completion
        raise AssertionError("unreachable: max_attempts must be at least 1")
