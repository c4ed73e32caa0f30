"""Outputs and caches on shared storage: the request cache on a real PostgreSQL server (same keys and semantics
as the SQLite file, safe for writers in several processes), Parquet outputs on S3 (a moto server), and two
"machines" (two state folders, two Dagster instances) sharing both through ``EVAL_PIPELINE_OUTPUTS`` and
``EVAL_PIPELINE_CACHE_URL``: the second sends nothing the first finished, even when the first was killed."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import CACHE_STORES, RequestCache
from eval_pipeline.inference.cache_postgres import PostgresRequestCache, redacted, split_namespace
from eval_pipeline.inference.runner import build_requests, complete_requests, run_generations
from eval_pipeline.inference.send_once import SendOnce
from eval_pipeline.resources.parquet_io import ParquetIOManager
from eval_pipeline.suite_definitions import default_resources
from tests.clocks import SettableClock
from tests.fakes import FakeLLMServer, FakeLLMServerProcess

PARAMS = GenerationParams(max_tokens=8)
REPO = Path(__file__).resolve().parent.parent



class Upper:
    """Answers each prompt upper-cased; records what it was sent (in memory, and in ``log`` when given)."""

    backend = "upper"

    def __init__(self, log: Path | None = None) -> None:
        self.sent: list[str] = []
        self.log = log
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        prompts = [r.messages[-1].content for r in requests]
        with self._lock:
            self.sent += prompts
            if self.log is not None:
                with self.log.open("a") as handle:  # O_APPEND: lines of two processes never interleave
                    handle.write("".join(f"{prompt}\n" for prompt in prompts))
        if on_progress:
            on_progress(len(requests))
        return [Completion(output=prompt.upper(), tokens_in=1, tokens_out=1) for prompt in prompts]


def samples(n: int, prefix: str = "q") -> pd.DataFrame:
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "input": [f"{prefix}{i}" for i in range(n)],
                         "input_kind": "text", "row_hash": "h"})


def namespaced(url: str, namespace: str) -> str:
    return f"{url}?namespace={namespace}"


def table_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    """Rows of one table, read with psycopg2 directly (not through the cache)."""
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
            return cursor.fetchall()
    finally:
        connection.close()


# -- the Postgres store -------------------------------------------------------------------------------------------

def test_the_url_scheme_picks_the_store(tmp_path: Path, postgres_url: str) -> None:
    assert {"sqlite", "postgresql", "postgres"} <= set(CACHE_STORES.names())
    plain, url = RequestCache(tmp_path / "a.sqlite"), RequestCache(f"sqlite:///{tmp_path / 'b.sqlite'}")
    shared = RequestCache(namespaced(postgres_url, "generations"))
    try:
        assert type(plain) is RequestCache and type(url) is RequestCache
        assert url.path == tmp_path / "b.sqlite" and (tmp_path / "b.sqlite").exists()
        assert isinstance(shared, PostgresRequestCache) and shared.namespace == "generations"
        assert "eval-pipeline" not in shared.location and "***" in shared.location  # no password in messages
    finally:
        for cache in (plain, url, shared):
            cache.close()
    with pytest.raises(EvalInputError, match="unknown request cache store 'redis'"):
        RequestCache("redis://127.0.0.1/0")


def test_postgres_round_trip_keeps_the_sqlite_semantics(postgres_url: str) -> None:
    cache = RequestCache(namespaced(postgres_url, "generations"))
    stored = Completion(output="hi", tokens_in=3, tokens_out=1, latency_s=0.5)
    assert cache.put_many([("k1", stored), ("k2", Completion(output="", error="boom"))]) == 1  # failures: no
    assert cache.get_many(["k1", "k2", "k3"]) == {"k1": stored} and len(cache) == 1
    cache.put_many([("k1", Completion(output="again"))])  # same key: replaced, one row
    assert cache.get_many(["k1"])["k1"].output == "again" and len(cache) == 1
    cache.put_many([("k1", Completion(output="one")), ("k1", Completion(output="two"))])  # the last one wins
    assert cache.get_many(["k1"])["k1"].output == "two" and len(cache) == 1
    odd = Completion(output="100% it's \"quoted\"; %s %(x)s ? \\ ünï 😀")  # quoting, placeholders, unicode
    cache.put_many([("k1", odd)])
    assert cache.get_many(["k1"]) == {"k1": odd}
    assert cache.put_scores([("p1", {"logprob": -1.25, "greedy": True})]) == 1
    assert cache.get_scores(["p1", "p2"]) == {"p1": {"logprob": -1.25, "greedy": True}}
    many = [(f"m{i}", Completion(output=str(i))) for i in range(1_234)]  # more than one 500-key chunk
    cache.put_many(many)
    assert {k: c.output for k, c in cache.get_many(k for k, _ in many).items()} == {k: c.output for k, c in many}
    cache.close()

    again = RequestCache(namespaced(postgres_url, "generations"))  # persistent: a new connection sees it
    judge = RequestCache(namespaced(postgres_url, "judgments"))  # another namespace in the same database
    assert len(again) == 1 + 1_234 and len(judge) == 0 and judge.get_many(["k1"]) == {}
    again.close()
    judge.close()
    assert [row[0] for row in table_rows(postgres_url, "generations_completions")][:2] == ["k1", "m0"]


def test_claims_follow_the_leases_on_postgres(postgres_url: str) -> None:
    clock = SettableClock()
    cache = RequestCache(namespaced(postgres_url, "generations"), clock=clock)
    other_host = "another-machine|4242|beef"  # a worker elsewhere: its lease decides, never a pid check here
    assert cache.claim(["a", "b"], other_host, lease_s=60.0) == (["a", "b"], [])
    cache.put_many([("b", Completion(output="B"))])  # stored: its claim is dropped, and it is in neither list
    assert cache.claim(["a", "b", "c"], "me|1|x", lease_s=60.0) == (["c"], ["a"])
    assert cache.claims() == {"a": other_host, "c": "me|1|x"}
    clock.now += 59.0
    cache.renew(other_host, lease_s=60.0)  # the heartbeat: a lease from now
    clock.now += 59.0
    assert cache.claim(["a"], "me|1|x", lease_s=60.0) == ([], ["a"])
    clock.now += 2.0  # expired: taken over
    assert cache.claim(["a"], "me|1|x", lease_s=60.0) == (["a"], [])
    cache.release(["a", "c"], "me|1|x")
    assert cache.claims() == {}
    cache.close()


def test_the_same_request_has_the_same_key_and_row_in_both_stores(tmp_path: Path, postgres_url: str) -> None:
    frames, rows = [], []
    for location in (tmp_path / "generations.sqlite", namespaced(postgres_url, "generations")):
        cache = RequestCache(location)
        frame, stats = run_generations(samples(5), "m", Upper(), PARAMS, cache=cache)
        assert stats.generated == 5
        frames.append(frame)
        cache.close()
    with sqlite3.connect(tmp_path / "generations.sqlite") as connection:
        rows.append(sorted(connection.execute("SELECT key, value FROM completions").fetchall()))
    rows.append(sorted(table_rows(postgres_url, "generations_completions")))
    assert rows[0] == rows[1] and len(rows[0]) == 5  # same keys, same stored JSON
    assert frames[0]["request_hash"].tolist() == frames[1]["request_hash"].tolist()
    assert sorted(frames[0]["request_hash"]) == [key for key, _ in rows[0]]


def write_same_keys(url: str, worker: int, barrier: Any) -> None:
    """One process's writes: every key, 20 times, racing the other process (each its own connection)."""
    cache = RequestCache(url)
    barrier.wait()
    for round_ in range(20):
        cache.put_many([(f"k{i}", Completion(output=f"v{i}")) for i in range(50)])
        cache.claim([f"c{round_}"], f"{socket.gethostname()}|{os.getpid()}|{worker}", lease_s=60.0)
    cache.close()


ROUNDS = 30


def generate_in_process(url: str, log: str, worker: int, barrier: Any) -> None:
    """One worker's generation runs on the shared cache: ROUNDS suites of 8 new items, each started at the same
    moment as the other worker's run of the same items."""
    cache = RequestCache(url)
    for round_ in range(ROUNDS):
        barrier.wait(60)
        done = complete_requests(build_requests(samples(8, f"r{round_}q"), 1, None), Upper(Path(log)), PARAMS,
                                 cache=cache, coordination=SendOnce(poll_s=0.01))
        assert [done.results[key].output for key in done.keys] == [f"R{round_}Q{i}" for i in range(8)]
    cache.close()


def run_two_processes(target: Any, *args: Any) -> None:
    context = multiprocessing.get_context("fork")  # two real processes, each opening its own connection
    barrier = context.Barrier(2)
    processes = [context.Process(target=target, args=(*args, worker, barrier)) for worker in range(2)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(120)
    finally:
        for process in processes:
            if process.is_alive():  # its partner failed and it waits at the barrier
                process.kill()
                process.join()
    assert [process.exitcode for process in processes] == [0, 0]


def test_two_processes_writing_the_same_keys_leave_one_row_each(postgres_url: str) -> None:
    url = namespaced(postgres_url, "generations")
    RequestCache(url).close()  # tables exist; the processes also race to create them in the next test
    run_two_processes(write_same_keys, url)
    rows = table_rows(postgres_url, "generations_completions")
    assert len(rows) == 50 and sorted(key for key, _ in rows) == sorted(f"k{i}" for i in range(50))
    assert {key: json.loads(value)["output"] for key, value in rows} == {f"k{i}": f"v{i}" for i in range(50)}


def test_two_processes_on_a_fresh_database_send_each_request_once(tmp_path: Path, postgres_url: str) -> None:
    log = tmp_path / "sent.txt"
    run_two_processes(generate_in_process, namespaced(postgres_url, "generations"), str(log))
    sent = log.read_text().split()
    expected = [f"r{round_}q{i}" for round_ in range(ROUNDS) for i in range(8)]
    assert sorted(sent) == sorted(expected)  # each once, across both processes
    assert len(table_rows(postgres_url, "generations_completions")) == len(expected)


def test_an_unreachable_database_is_an_input_error_without_the_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    with pytest.raises(EvalInputError, match="cannot connect to the request cache database") as raised:
        RequestCache(f"postgresql://user:s3cret@127.0.0.1:{port}/db")
    assert "s3cret" not in str(raised.value) and "EVAL_PIPELINE_CACHE_URL" in str(raised.value)
    with pytest.raises(EvalInputError, match="namespace"):
        split_namespace("postgresql://h/db?namespace=Bad-Name")


def test_urls_keep_their_parameters_and_lose_the_namespace() -> None:
    assert split_namespace("postgresql://u:p@h:5/db?sslmode=require&namespace=judgments") == (
        "postgresql://u:p@h:5/db?sslmode=require", "judgments")
    assert split_namespace("postgres://h/db") == ("postgresql://h/db", "requests")
    assert redacted("postgresql://u:p@h:5/db") == "postgresql://u:***@h:5/db"


# -- configuration ---------------------------------------------------------------------------------------------

def test_environment_variables_move_outputs_and_caches(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    resources = default_resources()
    assert resources["io_manager"].base_path == str(eval_home / "outputs")
    assert resources["generation_cache"].path == str(eval_home / "cache" / "generations.sqlite")
    assert resources["judge_cache"].path == str(eval_home / "cache" / "judgments.sqlite")

    monkeypatch.setenv("EVAL_PIPELINE_OUTPUTS", "s3://team-bucket/evals/")
    monkeypatch.setenv("EVAL_PIPELINE_CACHE_URL", "postgresql://u:p@db:5432/cache?sslmode=require")
    resources = default_resources()
    assert resources["io_manager"].base_path == "s3://team-bucket/evals"
    assert resources["generation_cache"].path == "postgresql://u:p@db:5432/cache?sslmode=require&namespace=generations"
    assert resources["judge_cache"].path == "postgresql://u:p@db:5432/cache?sslmode=require&namespace=judgments"
    assert paths.generation_cache_location() == resources["generation_cache"].path

    monkeypatch.setenv("EVAL_PIPELINE_OUTPUTS", str(eval_home.parent / "shared-outputs"))  # a mounted folder
    assert paths.outputs_location() == str(eval_home.parent / "shared-outputs")
    shared = eval_home.parent / "nfs"
    monkeypatch.setenv("EVAL_PIPELINE_CACHE_URL", f"sqlite:///{shared}")  # a shared folder of SQLite files
    assert paths.judge_cache_location() == str(shared / "judgments.sqlite") and shared.is_dir()


# -- S3 outputs ------------------------------------------------------------------------------------------------

@pytest.fixture
def bucket(aws_env: str) -> str:
    boto3.client("s3").create_bucket(Bucket="shared-outputs")
    return "shared-outputs"


def put_parquet(bucket: str, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def test_model_stage_reads_see_shards_another_machine_wrote(bucket: str) -> None:
    io_manager = ParquetIOManager(base_path=f"s3://{bucket}/runs")
    key = ["suite", "generations"]
    assert io_manager.read_model_stage(key, "m") is None
    put_parquet(bucket, "runs/suite/generations/m/0.parquet", pd.DataFrame({"sample_id": ["a"]}))
    assert io_manager.model_stage_paths(key, "m") == [f"s3://{bucket}/runs/suite/generations/m/0.parquet"]
    for shard, ids in ((1, ["b", "c"]), (10, ["z"]), (2, ["d"])):  # written elsewhere, after this process looked
        put_parquet(bucket, f"runs/suite/generations/m/{shard}.parquet", pd.DataFrame({"sample_id": ids}))
    assert io_manager.read_model_stage(key, "m")["sample_id"].tolist() == ["a", "b", "c", "d", "z"]
    put_parquet(bucket, "runs/suite/generations/w.parquet", pd.DataFrame({"sample_id": ["w"]}))
    assert io_manager.read_model_stage(key, "w")["sample_id"].tolist() == ["w"]
    assert io_manager.path_for(key, "w") == f"s3://{bucket}/runs/suite/generations/w.parquet"


# -- two machines --------------------------------------------------------------------------------------------------

ITEMS = 12


def suite_project(folder: Path, url: str, shards: int = 1) -> Path:
    """A 12-item suite on the fake: generations (right for even items) and a Correctness judge."""
    (folder / "evals").mkdir(parents=True)
    (folder / "qa.jsonl").write_text("".join(json.dumps({"id": f"q{i:02d}", "prompt": f"What is {i} plus {i}?",
                                                         "answer": str(2 * i)}) + "\n" for i in range(ITEMS)))
    path = folder / "evals" / "shared.yaml"
    path.write_text(
        "suite: shared\ndataset: {uri: qa.jsonl}\nmodels:\n"
        f"  - {{name: served, backend: openai, base_url: '{url}/v1', model: served-model, n_concurrent: 2}}\n"
        "generation: {max_tokens: 16}\nscorers: [exact_match]\n"
        "judge: {model: {backend: openai, base_url: '" + url + "/v1', model: judge-model, n_concurrent: 2}, "
        f"builtin_metrics: [Correctness]}}\nschedule: null\nshards: {shards}\n")
    return path


def answer(prompt: str, model: str) -> str:
    if model == "judge-model":
        return "Looks fine.\nVerdict: correct"
    number = int(prompt.split()[2])
    return str(2 * number) if number % 2 == 0 else "no idea"


def machine_env(home: Path, cache_url: str, outputs: str) -> dict[str, str]:
    """A worker's environment: its own state folder (Dagster instance, MLflow), the shared outputs and caches."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI",
                                                            "PYTEST_CURRENT_TEST", "OPENAI_API_KEY")}
    env.update(EVAL_PIPELINE_HOME=str(home), EVAL_PIPELINE_OUTPUTS=outputs, EVAL_PIPELINE_CACHE_URL=cache_url,
               MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return env


def run_cli(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eval_pipeline.cli", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def bucket_objects(bucket: str) -> dict[str, str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: item["ETag"] for item in listing}


@pytest.mark.slow
@pytest.mark.parametrize("shards", [1, 2])
def test_two_machines_share_outputs_on_s3_and_caches_on_postgres(tmp_path: Path, postgres_url: str, bucket: str,
                                                                 shards: int) -> None:
    outputs = f"s3://{bucket}/team/evals"
    with FakeLLMServer(answer=answer) as server:
        path = suite_project(tmp_path / "project", server.url, shards)
        first = run_cli(path.parent.parent, machine_env(tmp_path / "machine1", postgres_url, outputs),
                        "run", str(path), "--json")
        assert first.returncode == 0, first.stderr[-4000:]
        assert server.requests_total == 2 * ITEMS  # a generation and a judgment per item
        after_first = bucket_objects(bucket)
        server.reset()

        second = run_cli(path.parent.parent, machine_env(tmp_path / "machine2", postgres_url, outputs),
                         "run", str(path))
        assert second.returncode == 0, second.stderr[-4000:]
        assert server.requests_total == 0  # machine 2 repeats nothing machine 1 did

    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["outputs"]["served"]["metrics"] == f"{outputs}/shared/metrics/served.parquet"
    prefix = "team/evals/shared/"
    per_item = ("generations", "scores", "judgments")
    expected = {f"{prefix}samples.parquet", f"{prefix}metrics/served.parquet"} | (
        {f"{prefix}{stage}/served.parquet" for stage in per_item} if shards == 1
        else {f"{prefix}{stage}/served/{shard}.parquet" for stage in per_item for shard in range(shards)})
    assert expected <= set(after_first) and set(bucket_objects(bucket)) == set(after_first)  # same objects
    for machine in ("machine1", "machine2"):  # nothing of the outputs or the caches stayed on a machine
        local = {p.name for p in (tmp_path / machine).rglob("*") if p.suffix in (".parquet", ".sqlite")}
        assert not local & {"served.parquet", "samples.parquet", "generations.sqlite", "judgments.sqlite"}, local

    # The metric rows machine 2 printed, read back from S3 by boto3, against the answers' own count.
    body = boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}metrics/served.parquet")["Body"].read()
    metrics = pq.read_table(io.BytesIO(body)).to_pandas()
    overall = metrics[metrics["breakdown_key"].isna()].set_index("metric")["value"]
    right = sum(1 for i in range(ITEMS) if i % 2 == 0) / ITEMS
    assert overall["exact_match"] == pytest.approx(right)
    assert overall["Correctness"] == pytest.approx(1.0)
    assert "generation: 12 requests, 12 from cache, 0 generated" in second.stdout
    assert "judging: 12 requests, 12 from cache, 0 sent" in second.stdout
    assert f"outputs: {outputs}/shared" in second.stdout
    exact_line = next(line for line in second.stdout.splitlines() if line.strip().startswith("exact_match"))
    assert f"{right:.3f}" in exact_line, second.stdout
    # each cache namespace holds one row per request: 12 generations, 12 judgments
    assert len(table_rows(postgres_url, "generations_completions")) == ITEMS
    assert len(table_rows(postgres_url, "judgments_completions")) == ITEMS


@pytest.mark.slow
def test_a_worker_killed_on_one_machine_is_finished_on_another_sending_only_the_rest(
        tmp_path: Path, postgres_url: str, bucket: str) -> None:
    """kill -9 of machine 1's run mid-generation; machine 2 (its own state folder and Dagster instance) runs the
    suite again: it takes every request machine 1 stored from Postgres and sends only the unfinished ones."""
    from tests import test_resume_kill as resume  # its suite, its kill and its counting at the fake

    MANY, MODEL = resume.ITEMS, resume.MODEL
    outputs = f"s3://{bucket}/team/evals"
    with FakeLLMServerProcess("--latency", "0.05", "--known-model", resume.SERVED_MODEL) as fake:
        suite_path = resume.write_suite(tmp_path / "project", fake.url)
        command = [*resume.CLI, "run", str(suite_path), "--json"]
        resume.kill_mid_generation(command, machine_env(tmp_path / "machine1", postgres_url, outputs), fake)
        first = resume.wait_idle(fake)
        first_keys = set(resume.completed(first))
        saved = len(table_rows(postgres_url, "generations_completions"))
        assert 0 < saved <= len(first_keys) < MANY, (saved, len(first_keys))

        second_run = subprocess.run(command, cwd=REPO, env=machine_env(tmp_path / "machine2", postgres_url, outputs),
                                    capture_output=True, text=True, timeout=300)
        assert second_run.returncode == 0, second_run.stderr[-4000:]
        second = fake.stats(recent=0)

    result = json.loads(second_run.stdout.strip().splitlines()[-1])
    generation = result["generation"][MODEL]
    assert int(generation["cached"]) == saved and int(generation["generated"]) == MANY - saved, generation
    # At the fake: machine 2 sent each unfinished request once, and nothing machine 1 had stored.
    second_only = resume.completed(second) - resume.completed(first)
    assert all(n == 1 for n in second_only.values()) and sum(second_only.values()) == MANY - saved
    repeated = first_keys & set(second_only)  # answered to machine 1 but never stored before the kill
    assert len(repeated) == len(first_keys) - saved
    print(f"machine 1: {len(first_keys)} answered, {saved} stored; machine 2: {MANY - saved} sent, "
          f"{len(repeated)} of them answered to machine 1 before the kill")

    body = boto3.client("s3").get_object(Bucket=bucket, Key=f"team/evals/{resume.SUITE}/generations/{MODEL}.parquet")
    frame = pq.read_table(io.BytesIO(body["Body"].read())).to_pandas()
    assert len(frame) == MANY and frame["sample_id"].is_unique and frame["error"].isna().all()
    assert int(frame["cached"].sum()) == saved
    assert len(table_rows(postgres_url, "generations_completions")) == MANY
