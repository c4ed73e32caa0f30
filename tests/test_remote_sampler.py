"""The remote machinery: concurrency bound, retries, retry hints, adaptive throttling, error rows, cost."""

import random
import threading
import time
from typing import Any

import pytest

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.remote import (
    AdaptiveLimit,
    PermanentError,
    Price,
    RemoteSampler,
    RetryPolicy,
    TransientError,
)

FAST = RetryPolicy(max_attempts=5, base_delay_s=0.001, max_delay_s=0.01)


class Scripted(RemoteSampler):
    """Answers after ``latency_s``; the script maps a prompt to the failures its first attempts meet."""

    backend = "scripted"

    def __init__(self, script: dict[str, list[Exception]] | None = None, latency_s: float = 0.0, **options: Any):
        super().__init__(**options)
        self.script, self.latency_s = script or {}, latency_s
        self.attempts: dict[str, int] = {}
        self.in_flight = self.peak = 0
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def call(self, request: GenerationRequest, params: GenerationParams) -> Completion:
        prompt = request.messages[-1].content
        with self._lock:
            attempt = self.attempts.get(prompt, 0)
            self.attempts[prompt] = attempt + 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.latency_s)
            failures = self.script.get(prompt, [])
            if attempt < len(failures):
                raise failures[attempt]
            return Completion(output=prompt.upper(), tokens_in=10, tokens_out=20)
        finally:
            with self._lock:
                self.in_flight -= 1


def requests_for(prompts: list[str]) -> list[GenerationRequest]:
    return [GenerationRequest(f"s{i}", 0, ({"role": "user", "content": p},)) for i, p in enumerate(prompts)]


def test_order_concurrency_bound_and_cost() -> None:
    sampler = Scripted(latency_s=0.02, n_concurrent=4, retry=FAST, price=Price(3.0, 15.0))
    prompts = [f"p{i}" for i in range(20)]
    done: list[int] = []
    out = sampler.generate(requests_for(prompts), GenerationParams(), done.append)
    assert [c.output for c in out] == [p.upper() for p in prompts]
    assert sampler.peak == 4 and sum(done) == 20
    assert out[0].cost_usd == pytest.approx((10 * 3.0 + 20 * 15.0) / 1e6)
    assert all(c.latency_s >= 0.02 for c in out)


def test_transient_failures_are_retried_and_permanent_ones_are_error_rows() -> None:
    script = {"flaky": [TransientError("503"), TransientError("timeout")],
              "bad": [PermanentError("ValidationException: unknown model")],
              "hopeless": [TransientError("503")] * 10}
    sampler = Scripted(script, n_concurrent=2, retry=FAST)
    flaky, bad, hopeless, fine = sampler.generate(requests_for(["flaky", "bad", "hopeless", "fine"]),
                                                  GenerationParams())
    assert flaky.output == "FLAKY" and sampler.attempts["flaky"] == 3
    assert bad.output is None and bad.error == "scripted: ValidationException: unknown model"
    assert sampler.attempts["bad"] == 1  # never retried
    assert hopeless.error.startswith("scripted: gave up after 5 attempts: 503") and sampler.attempts["hopeless"] == 5
    assert fine.error is None


def test_unexpected_exceptions_become_error_rows() -> None:
    sampler = Scripted({"odd": [KeyError("choices")]}, retry=FAST)
    odd, fine = sampler.generate(requests_for(["odd", "fine"]), GenerationParams())
    assert odd.error == "scripted: KeyError: 'choices'" and fine.output == "FINE"


def test_retry_hint_is_honoured() -> None:
    sampler = Scripted({"slow": [TransientError("429", throttled=True, retry_after_s=0.3)]},
                       retry=RetryPolicy(max_attempts=3, base_delay_s=0.0001, max_delay_s=5))
    started = time.perf_counter()
    [completion] = sampler.generate(requests_for(["slow"]), GenerationParams())
    assert completion.output == "SLOW" and 0.3 <= time.perf_counter() - started < 1.0


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy, rng = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0), random.Random(0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = [policy.delay_s(attempt, None, rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling and max(delays) > ceiling * 0.8
    assert 2.0 <= policy.delay_s(0, 2.0, rng) <= 2.4 and policy.delay_s(0, 100.0, rng) <= 8.0 * 1.2


def test_adaptive_limit_cuts_on_throttling_and_grows_back() -> None:
    limit = AdaptiveLimit(16, cooldown_s=0.0)
    limit.throttled()
    limit.throttled()
    assert limit.limit == 16 * 0.75 * 0.75
    for _ in range(200):
        limit.succeeded()
    assert limit.limit == 16.0
    cooled = AdaptiveLimit(16, cooldown_s=60.0)
    cooled.throttled()
    cooled.throttled()  # within the cool-down: one cut only
    assert cooled.limit == 12.0


def test_stream_yields_each_completion_as_it_finishes() -> None:
    sampler = Scripted({"late": [TransientError("503")]}, latency_s=0.01, n_concurrent=2,
                       retry=RetryPolicy(max_attempts=3, base_delay_s=0.2, max_delay_s=0.2))
    order = [index for index, _ in sampler.stream(requests_for(["late", "a", "b"]), GenerationParams())]
    assert sorted(order) == [0, 1, 2] and order[-1] == 0  # the retried one arrives last
