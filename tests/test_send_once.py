"""Concurrent runs of the same requests send each once in total: claims in the request cache, waiting for another
run's requests, taking over from a dead or expired owner, a released claim after failures; the corrupt cache
message; and ten repetitions of two CLI processes on one fresh state folder against the fake server."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import RequestCache, request_keys
from eval_pipeline.inference.runner import complete_requests, run_generations
from eval_pipeline.inference.send_once import SendOnce
from eval_pipeline.judging import parse_custom_metrics
from eval_pipeline.judging.run import run_judgments
from tests.clocks import SettableClock
from tests.fakes import FakeLLMServer

PARAMS = GenerationParams(max_tokens=8)
REPO = Path(__file__).resolve().parent.parent



class Upper:
    """Answers the prompt upper-cased, ``delay_s`` per call; counts the requests it was sent."""

    backend = "upper"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.sent, self._lock = delay_s, [], threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        with self._lock:
            self.sent += [r.messages[-1].content for r in requests]
        out = []
        for request in requests:
            time.sleep(self.delay_s)
            out.append(Completion(output=request.messages[-1].content.upper()))
            if on_progress:
                on_progress(1)
        return out


def requests(n: int = 3) -> list[GenerationRequest]:
    return [GenerationRequest(f"s{i}", 0, ({"role": "user", "content": f"q{i}"},)) for i in range(n)]


@pytest.fixture
def two_runs(tmp_path: Path) -> Iterator[tuple[RequestCache, RequestCache, SettableClock]]:
    """Two connections to one cache file (two runs), on one injected clock."""
    clock = SettableClock()
    first, second = (RequestCache(tmp_path / "generations.sqlite", clock=clock) for _ in range(2))
    yield first, second, clock
    first.close()
    second.close()


def run_twice_at_once(run: Callable[[], None]) -> None:
    """Two runs in threads of this process, started together (each opens its own cache connection)."""
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_run_waits_for_requests_another_live_run_is_sending(two_runs: Any) -> None:
    cache_a, cache_b, _ = two_runs
    other, sampler = SendOnce(owner=f"{socket.gethostname()}|{os.getpid()}|other"), Upper()
    keys = request_keys(sampler, PARAMS, requests())
    assert cache_a.claim(keys, other.owner, other.lease_s) == (keys, [])
    messages, sleeps = [], []

    def sleep(seconds: float) -> None:  # while B waits, A finishes its requests
        sleeps.append(seconds)
        cache_a.put_many((key, Completion(output=f"from A {i}")) for i, key in enumerate(keys))

    done = complete_requests(requests(), sampler, PARAMS, cache=cache_b, coordination=SendOnce(sleep=sleep),
                             log=messages.append)
    assert sampler.sent == [] and done.sent == 0 and done.cached == set(keys)
    assert [done.completion(i).output for i in range(3)] == ["from A 0", "from A 1", "from A 2"]
    assert messages == [f"waiting for 3 requests another run is sending (cache {cache_b.path})"]
    assert len(sleeps) == 1 and cache_b.claims() == {}


def test_requests_another_run_released_after_failures_are_sent_by_the_waiting_run(two_runs: Any) -> None:
    cache_a, cache_b, _ = two_runs
    other, sampler = SendOnce(owner=f"{socket.gethostname()}|{os.getpid()}|other"), Upper()
    keys = request_keys(sampler, PARAMS, requests())
    cache_a.claim(keys, other.owner, other.lease_s)

    def sleep(seconds: float) -> None:  # A got one answer and two failures (never cached): it releases them
        cache_a.put_many([(keys[0], Completion(output="from A"))])
        cache_a.release(keys, other.owner)

    done = complete_requests(requests(), sampler, PARAMS, cache=cache_b, coordination=SendOnce(sleep=sleep))
    assert sampler.sent == ["q1", "q2"] and done.sent == 2
    assert [done.completion(i).output for i in range(3)] == ["from A", "Q1", "Q2"]
    assert done.cached == {keys[0]}


def test_an_expired_lease_is_taken_over(two_runs: Any) -> None:
    cache_a, cache_b, clock = two_runs
    elsewhere = SendOnce(owner="another-host|4242|x", lease_s=60.0)  # its liveness cannot be checked from here
    sampler = Upper()
    keys = request_keys(sampler, PARAMS, requests())
    cache_a.claim(keys, elsewhere.owner, elsewhere.lease_s)
    clock.now += 50
    cache_a.renew(elsewhere.owner, elsewhere.lease_s)  # its heartbeat: now expires at +110
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += 20

    done = complete_requests(requests(), sampler, PARAMS, cache=cache_b, coordination=SendOnce(sleep=sleep))
    assert len(sleeps) == 3  # waited past the renewed lease (110 s from the start), then sent them itself
    assert clock.now == 1_000 + 50 + 60 and sampler.sent == ["q0", "q1", "q2"] and done.sent == 3


def test_a_dead_owner_is_taken_over_at_once(two_runs: Any) -> None:
    cache_a, cache_b, _ = two_runs
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    sampler = Upper()
    keys = request_keys(sampler, PARAMS, requests())
    cache_a.claim(keys, f"{socket.gethostname()}|{gone}|x", 3600.0)  # a killed run's claims
    sleeps: list[float] = []
    done = complete_requests(requests(), sampler, PARAMS, cache=cache_b, coordination=SendOnce(sleep=sleeps.append))
    assert sleeps == [] and done.sent == 3 and sampler.sent == ["q0", "q1", "q2"]


def test_the_heartbeat_renews_claims_while_sending(tmp_path: Path) -> None:
    clock = SettableClock()
    cache = RequestCache(tmp_path / "c.sqlite", clock=clock)
    how = SendOnce(lease_s=60.0, heartbeat_s=0.01)
    seen: list[float] = []

    class Slow(Upper):
        def generate(self, batch: Sequence[GenerationRequest], params: GenerationParams,
                     on_progress: Any = None) -> list[Completion]:
            clock.now += 1_000  # far past the lease: only the heartbeat keeps the claims
            key = request_keys(self, PARAMS, batch)[0]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                expires = cache._db.execute("SELECT expires FROM claims WHERE key = ?", (key,)).fetchone()[0]
                if expires > clock.now:
                    seen.append(expires)
                    break
                time.sleep(0.01)
            return super().generate(batch, params, on_progress)

    complete_requests(requests(1), Slow(), PARAMS, cache=cache, coordination=how)
    assert seen == [clock.now + 60.0] and cache.claims() == {}


def test_two_threads_with_their_own_connections_send_each_request_once(tmp_path: Path) -> None:
    sampler = Upper(delay_s=0.01)
    frames: list[pd.DataFrame] = []
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(40)], "input": [f"q{i}" for i in range(40)],
                            "input_kind": "text", "row_hash": "h"})

    def run() -> None:
        cache = RequestCache(tmp_path / "generations.sqlite")
        frame, _ = run_generations(samples, "m", sampler, PARAMS, cache=cache,
                                   on_progress=None)
        frames.append(frame)
        cache.close()

    run_twice_at_once(run)
    assert sorted(sampler.sent) == sorted(f"q{i}" for i in range(40))  # each once in total
    for frame in frames:
        assert frame["output"].tolist() == [f"Q{i}" for i in range(40)]


def test_judge_requests_are_sent_once_across_runs(tmp_path: Path) -> None:
    metric = parse_custom_metrics([{"customMetricDefinition": {
        "name": "Upbeat", "instructions": "Is it upbeat?\nResponse: {{prediction}}",
        "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                        {"definition": "Poor", "value": {"floatValue": 0}}]}}])[0]

    class Judge(Upper):
        def generate(self, batch: Sequence[GenerationRequest], params: GenerationParams,
                     on_progress: Any = None) -> list[Completion]:
            super().generate(batch, params)
            return [Completion(output="Verdict: Good") for _ in batch]

    judge = Judge(delay_s=0.01)
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(20)], "input": "q", "input_kind": "text",
                            "reference": None})
    generations = pd.DataFrame({"sample_id": samples["sample_id"], "model": "m", "sample_index": 0,
                                "output": [f"answer {i}" for i in range(20)], "error": None})
    results: list[Any] = []

    def run() -> None:
        cache = RequestCache(tmp_path / "judgments.sqlite")
        results.append(run_judgments(samples, generations, [metric], judge, PARAMS, judge_model="j", cache=cache))
        cache.close()

    run_twice_at_once(run)
    assert len(judge.sent) == 20
    assert sum(stats.sent for _, stats in results) == 20
    assert all((frame["label"] == "Good").all() for frame, _ in results)


# -- a corrupt cache file --------------------------------------------------------------------------------------

def test_a_corrupt_cache_file_names_the_path_and_the_remedy(tmp_path: Path) -> None:
    path = tmp_path / "generations.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(EvalInputError, match=r"generations\.sqlite") as raised:
        RequestCache(path)
    assert "Delete it" in str(raised.value) and "rebuilt" in str(raised.value)


def suite_project(folder: Path, url: str, *, judge: bool = True, n: int = 12) -> Path:
    (folder / "evals").mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"What is {i} plus {i}?",
                                                         "answer": str(2 * i)}) + "\n" for i in range(n)))
    judge_block = ("judge: {model: {backend: openai, base_url: '" + url + "/v1', model: judge-model, "
                   "n_concurrent: 2}, builtin_metrics: [Correctness]}\n") if judge else ""
    path = folder / "evals" / "twice.yaml"
    path.write_text("suite: twice\ndataset: {uri: qa.jsonl}\nmodels:\n"
                    f"  - {{name: served, backend: openai, base_url: '{url}/v1', model: served-model, "
                    "n_concurrent: 2}\ngeneration: {max_tokens: 16}\nscorers: [exact_match]\n" + judge_block)
    return path


def answer(prompt: str, model: str) -> str:
    if model == "judge-model":
        return "The answer is right.\nVerdict: correct"
    return str(2 * int(prompt.split()[2])) if prompt.startswith("What is") else "?"


def cli(folder: Path, home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "EVAL_PIPELINE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true",
           "PYTHONPATH": str(REPO)}
    env.pop("DAGSTER_HOME", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "eval_pipeline.cli", *args], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_cli_names_a_corrupt_cache_and_its_remedy(tmp_path: Path) -> None:
    with FakeLLMServer(answer=answer) as server:
        path = suite_project(tmp_path / "p", server.url, judge=False, n=2)
        home = tmp_path / "home"
        (home / "cache").mkdir(parents=True)
        (home / "cache" / "generations.sqlite").write_bytes(os.urandom(8192))
        process = cli(tmp_path / "p", home, "run", str(path))
        out, err = process.communicate(timeout=300)
        assert server.requests_total == 0
    assert process.returncode == 2, (out, err)
    assert str(home / "cache" / "generations.sqlite") in err and "Delete it" in err
    assert "Traceback" not in err and "File \"" not in err and "DatabaseError" not in err


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_two_cli_runs_on_one_fresh_state_folder_send_each_request_once(tmp_path: Path) -> None:
    """Ten repetitions: two ``eval-pipeline run`` processes started together on a fresh state folder; every
    generation and judge request reaches the fake once in total, and both runs succeed with the right numbers."""
    report = []
    with FakeLLMServer(answer=answer, latency_s=0.25) as server:
        path = suite_project(tmp_path / "p", server.url)
        for repetition in range(10):
            server.reset()
            home = tmp_path / f"home{repetition}"
            processes = [cli(tmp_path / "p", home, "run", str(path), "--json") for _ in range(2)]
            outputs = [process.communicate(timeout=600) for process in processes]
            waits = sum("another run is sending" in err for _, err in outputs)
            report.append({"repetition": repetition, "requests": server.requests_total,
                           "duplicates": len(server.duplicates), "exit": [p.returncode for p in processes],
                           "waited": waits})
            print(json.dumps(report[-1]), file=sys.stderr, flush=True)
            for process, (out, err) in zip(processes, outputs, strict=True):
                assert process.returncode == 0, err[-3000:]
                result = json.loads(out)
                assert result["success"] and result["metrics"], result
                [exact] = [m for m in result["metrics"] if m["metric"] == "exact_match" and not m["breakdown"]]
                assert exact["value"] == 1.0 and exact["n"] == 12
            assert server.duplicates == {}, report[-1]
            assert server.requests_total == 24, report[-1]  # 12 generations + 12 judge requests, once each
    print(json.dumps(report))


def heartbeat_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "claims-heartbeat"}


def test_one_heartbeat_thread_serves_every_call(tmp_path: Path) -> None:
    """Each call (an agent's turn is a one-request call) used to start and join its own heartbeat thread: now one
    thread per process renews every sender's claims, and a call starts none of its own."""
    cache = RequestCache(tmp_path / "c.sqlite")
    seen: list[set[threading.Thread]] = []

    class Watching(Upper):
        def generate(self, batch: Sequence[GenerationRequest], params: GenerationParams,
                     on_progress: Any = None) -> list[Completion]:
            seen.append(heartbeat_threads())
            return super().generate(batch, params, on_progress)

    sampler = Watching()
    for i in range(5):
        request = GenerationRequest(f"t{i}", 0, ({"role": "user", "content": f"turn {i}"},))
        complete_requests([request], sampler, PARAMS, cache=cache)
    assert len(seen) == 5 and all(len(threads) == 1 for threads in seen)
    assert len(set().union(*seen)) == 1  # the same thread every time
    assert sampler.sent == [f"turn {i}" for i in range(5)] and cache.claims() == {}


def test_an_owner_with_two_sends_in_flight_is_renewed_until_the_last_ends(tmp_path: Path) -> None:
    """Two concurrent sends sharing one SendOnce (rollouts of one run): the second one ending must not stop the
    heartbeat of the first, still sending."""
    clock = SettableClock()
    cache = RequestCache(tmp_path / "c.sqlite", clock=clock)
    how = SendOnce(lease_s=60.0, heartbeat_s=0.01)
    started, finish = threading.Event(), threading.Event()

    class Held(Upper):
        def generate(self, batch: Sequence[GenerationRequest], params: GenerationParams,
                     on_progress: Any = None) -> list[Completion]:
            if batch[0].messages[-1].content == "long":
                started.set()
                assert finish.wait(10)
            return super().generate(batch, params, on_progress)

    sampler = Held()
    long = GenerationRequest("a", 0, ({"role": "user", "content": "long"},))
    short = GenerationRequest("b", 0, ({"role": "user", "content": "short"},))
    worker = threading.Thread(target=complete_requests, args=([long], sampler, PARAMS),
                              kwargs={"cache": cache, "coordination": how})
    worker.start()
    try:
        assert started.wait(10)
        complete_requests([short], sampler, PARAMS, cache=cache, coordination=how)  # starts and ends meanwhile
        key = request_keys(sampler, PARAMS, [long])[0]
        clock.now += 1_000  # far past the lease: only the heartbeat keeps the long send's claim
        deadline, renewed = time.monotonic() + 10, None
        while time.monotonic() < deadline and renewed is None:
            expires = cache._db.execute("SELECT expires FROM claims WHERE key = ?", (key,)).fetchone()[0]
            renewed = expires if expires > clock.now else None
            time.sleep(0.01)
        assert renewed == clock.now + 60.0
    finally:
        finish.set()
        worker.join()
    assert cache.claims() == {} and sorted(sampler.sent) == ["long", "short"]
