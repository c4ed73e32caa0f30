"""A backfill of two models × two shards on a PostgreSQL-backed Dagster instance, run by a real ``dagster-daemon``
with the multiprocess executor; one run worker is killed with SIGKILL in the middle of its shard's generation.

Real parts only: PostgreSQL started by the test session (``postgres_url``), the instance's ``dagster.yaml`` as the
product writes it (storage on PostgreSQL, the queued run coordinator with its tag limits, run retries),
``dagster-daemon run`` over ``workspace.yaml``, ``eval-pipeline backfill --wait`` as a child process, and two fake
OpenAI-compatible servers (one per model; the ``slow`` model's answers take ``SLOW_LATENCY_S`` each, one at a
time, so the kill lands while its shard is being generated). The victim is found through the event log (its run
logged ``k/n`` of its generation with 0 < k < n), and its run worker is killed with every process under it.
The backfill runs the samples and the model × shard partitions; each model's metrics are aggregated by the suite's
automation sensor once all its shards are in (``eval-pipeline backfill --wait`` follows both).

What must hold: the code server reports the dead run failed, the daemon retries it (``run_retries``), the retry
takes the killed shard's saved answers from the request cache, and the backfill completes; every item × model row
is in the Parquet outputs exactly once; at each fake, every item was answered exactly once (the one request in
flight at the kill was never answered, and is the only one sent twice); no more runs per ``eval/backend`` value
were in progress at once than the queue allows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psutil
import pytest

from eval_pipeline.data.shards import shard_of
from eval_pipeline.instance import PG_URL_ENV, RunQueue, render_config
from tests.dagster_live import REPO_ROOT, ManagedProcess, _executable, _spawn, deployment_env, stop_groups
from tests.fakes import FakeLLMServerProcess

pytestmark = pytest.mark.slow

SUITE = "pgfill"
ITEMS = 16
SHARDS = 2
MODELS = ("steady", "slow")
SLOW_LATENCY_S = 1.5
"""Long beside the test's reaction time, so the request in flight at the kill is never answered."""
KILL_AT = 2
"""Kill once the victim's generation logged at least this many of its requests done."""
QUEUE = RunQueue(max_concurrent_runs=4, runs_per_backend=2, runs_per_backfill=4, pool_limit=4, max_retries=2)
BACKFILL_TIMEOUT_S = 540.0


def _prompt(i: int) -> str:
    return f"Item {i}: what is {i} plus {i}?"


def _write_suite(root: Path, urls: dict[str, str]) -> Path:
    suites = root / "suites"
    suites.mkdir(parents=True)
    with (root / "qa.jsonl").open("w") as handle:
        for i in range(ITEMS):
            handle.write(json.dumps({"id": f"q{i:02d}", "prompt": _prompt(i), "referenceResponse": str(2 * i)}) + "\n")
    concurrency = {"steady": 4, "slow": 1}
    models = "".join(
        f"  - {{name: {name}, backend: openai, base_url: '{urls[name]}/v1', model: served, "
        f"n_concurrent: {concurrency[name]}, timeout_s: 30, max_attempts: 1}}\n" for name in MODELS)
    (suites / f"{SUITE}.yaml").write_text(
        f"suite: {SUITE}\n"
        f"dataset: {{uri: {root / 'qa.jsonl'}, format: gen_qa}}\n"
        f"models:\n{models}"
        "generation: {max_tokens: 16}\n"
        "scorers: [exact_match]\n"
        f"shards: {SHARDS}\n"
        "schedule: null\n")
    return suites


@contextlib.contextmanager
def _daemon(env: dict[str, str], log_dir: Path) -> Iterator[ManagedProcess]:
    process = _spawn("daemon", [_executable("dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
                     env, log_dir)
    try:
        yield process
    finally:
        stop_groups([process])


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The run worker's pid, from its ``Started process for run (pid: N).`` engine event."""
    for entry in instance.all_logs(run_id):
        found = re.match(r"Started process for run \(pid: (\d+)\)", entry.message or "")
        if found:
            return int(found.group(1))
    return None


def _generation_done(instance: dg.DagsterInstance, run_id: str) -> tuple[int, int] | None:
    """The latest ``k/n`` the run's generation step logged (``<suite>/<model> generation: k/n (p%)``)."""
    latest = None
    for entry in instance.all_logs(run_id):
        found = re.search(r" generation: (\d+)/(\d+) \(", entry.message or "")
        if found:
            latest = (int(found.group(1)), int(found.group(2)))
    return latest


def _kill_mid_shard(instance: dg.DagsterInstance, cli: subprocess.Popen[str], daemon: ManagedProcess,
                    timeout_s: float = 300.0) -> tuple[str, tuple[int, int]]:
    """Wait until a run of the slow model logged KILL_AT ≤ k < n; SIGKILL its run worker and every process under
    it at once. Returns the run id and its (k, n)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cli.poll() is not None or not daemon.alive:
            pytest.fail(f"the backfill ended (rc {cli.returncode}) or the daemon died before the kill\n"
                        f"{daemon.tail()}")
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if not run.tags.get("dagster/partition", "").startswith("slow|"):
                continue
            done = _generation_done(instance, run.run_id)
            pid = _run_worker_pid(instance, run.run_id)
            if done and KILL_AT <= done[0] < done[1] and pid:
                worker = psutil.Process(pid)
                victims = [worker, *worker.children(recursive=True)]
                for process in victims:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.send_signal(signal.SIGKILL)
                return run.run_id, done
        time.sleep(0.1)
    pytest.fail(f"no run of the slow model was seen mid-generation in {timeout_s:.0f} s\n{daemon.tail()}")


def _max_overlap(records: list[Any]) -> int:
    """The most runs in progress at one moment, from their start and end times."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records],
                   key=lambda edge: (edge[0], edge[1]))
    current = peak = 0
    for _time, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def _model_rows(outputs: Path, stage: str, model: str) -> pd.DataFrame:
    files = sorted((outputs / SUITE / stage / model).glob("*.parquet"))
    assert [f.name for f in files] == [f"{shard}.parquet" for shard in range(SHARDS)], files
    return pd.concat([pd.read_parquet(f).assign(_shard=int(f.stem)) for f in files], ignore_index=True)


def test_backfill_on_postgres_survives_a_killed_run_worker(tmp_path: Path, postgres_url: str) -> None:
    dagster_home, state, logs = tmp_path / "dagster_home", tmp_path / "state", tmp_path / "logs"
    for folder in (dagster_home, state, logs):
        folder.mkdir()
    with FakeLLMServerProcess("--known-model", "served") as steady, \
            FakeLLMServerProcess("--known-model", "served", "--latency", str(SLOW_LATENCY_S)) as slow:
        fakes = {"steady": steady, "slow": slow}
        suites = _write_suite(tmp_path, {name: fake.url for name, fake in fakes.items()})
        (dagster_home / "dagster.yaml").write_text(render_config(PG_URL_ENV, QUEUE))
        env = deployment_env(dagster_home, state, suites, tmp_path / "models")
        pg_url = postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)  # SQLAlchemy 2.1: name the driver
        env.update({PG_URL_ENV: pg_url, "EVAL_PIPELINE_EXECUTOR": "multiprocess"})
        env.pop("OPENAI_API_KEY", None)
        os.environ[PG_URL_ENV] = pg_url  # this process reads the same instance
        try:
            instance = dg.DagsterInstance.from_config(str(dagster_home))  # creates the schema before the daemon
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            with _daemon(env, logs) as daemon:
                cli = subprocess.Popen([_executable("eval-pipeline"), "backfill", "--suite", SUITE, "--wait"],
                                       cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, start_new_session=True)
                try:
                    victim, at_kill = _kill_mid_shard(instance, cli, daemon)
                    out, err = cli.communicate(timeout=BACKFILL_TIMEOUT_S)
                finally:
                    if cli.poll() is None:
                        os.killpg(cli.pid, signal.SIGKILL)
                        cli.communicate()
                assert cli.returncode == 0, f"stdout:\n{out[-3000:]}\nstderr:\n{err[-4000:]}\n{daemon.tail(80)}"
            records = instance.get_run_records()
            stats = {name: fake.stats(recent=0) for name, fake in fakes.items()}
            instance.dispose()
        finally:
            os.environ.pop(PG_URL_ENV, None)

    backfill_ids = re.findall(r"^backfill (\w+): suite", out, re.MULTILINE)
    assert len(backfill_ids) == 1, out  # both models call one backend: one backfill
    assert f"backfill {backfill_ids[0]}: COMPLETED_SUCCESS" in out, out

    # The victim failed (its worker died) and was retried once, successfully; every other run succeeded first time.
    runs = {r.dagster_run.run_id: r.dagster_run for r in records}
    assert runs[victim].status == dg.DagsterRunStatus.FAILURE
    retries = [run for run in runs.values() if run.parent_run_id == victim]
    assert [run.status for run in retries] == [dg.DagsterRunStatus.SUCCESS], retries
    assert retries[0].tags["dagster/partition"] == runs[victim].tags["dagster/partition"]
    assert [run.run_id for run in runs.values() if run.status != dg.DagsterRunStatus.SUCCESS] == [victim]
    # The backfill ran the samples and each model × shard once (the victim's shard by its retry); the suite's
    # automation sensor aggregated each model once, after its shards.
    succeeded = [run for run in runs.values() if run.status == dg.DagsterRunStatus.SUCCESS]
    backfilled = [run for run in succeeded if run.tags.get("dagster/backfill") == backfill_ids[0]]
    aggregated = [run for run in succeeded if run.tags.get("dagster/sensor_name") == f"{SUITE}_aggregate_shards"]
    assert len(backfilled) + len(aggregated) == len(succeeded)
    assert sorted(run.tags.get("dagster/partition", "") for run in backfilled) == sorted(
        ["", *(f"{model}|{shard}" for model in MODELS for shard in range(SHARDS))])
    assert sorted(run.tags["dagster/partition"] for run in aggregated) == sorted(MODELS)
    assert "aggregation (the suite's automation sensor): 2/2 model partitions materialized" in out, out

    # The queue: never more runs calling one backend in progress than its tag limit.
    calling = [r for r in records if r.dagster_run.tags.get("eval/backend") == "openai"]
    assert {r.dagster_run.run_id for r in calling} == {run.run_id for run in backfilled} | {victim}
    assert _max_overlap(calling) <= QUEUE.runs_per_backend

    # Every item × model row once, each shard holding the items its hash assigns, each answer the fake's echo.
    outputs = state / "outputs"
    items = {f"q{i:02d}": i for i in range(ITEMS)}
    for model in MODELS:
        generations = _model_rows(outputs, "generations", model)
        assert sorted(generations["sample_id"]) == sorted(items), model
        assert generations["error"].isna().all() and set(generations["model"]) == {model}
        assert (generations["_shard"] == generations["sample_id"].map(lambda s: shard_of(s, SHARDS))).all()
        assert (generations["output"] == generations["sample_id"].map(lambda s: "echo: " + _prompt(items[s]))).all()
        scores = _model_rows(outputs, "scores", model)
        assert sorted(scores["sample_id"]) == sorted(items) and (scores["score"] == 0.0).all()
        metrics = pd.read_parquet(outputs / SUITE / "metrics" / f"{model}.parquet")
        overall = metrics[metrics["breakdown_key"].isna()].set_index("metric")
        assert overall.loc["exact_match", "n"] == ITEMS and overall.loc["exact_match", "value"] == 0.0

    # At the fakes: every item answered once per model, nothing answered twice; the slow model's retry took the
    # killed shard's answers from the cache (it asked only for the rest).
    for model, counts in stats.items():
        assert counts["completed_total"] == ITEMS and not counts["duplicates"], (model, counts)
    assert stats["steady"]["requests"] == ITEMS
    lost = stats["slow"]["by_outcome"].get("client_gone", 0)
    assert lost <= 1 and stats["slow"]["requests"] == ITEMS + lost, stats["slow"]
    slow_shard = _model_rows(outputs, "generations", "slow")
    killed_shard = int(runs[victim].tags["dagster/partition"].split("|")[1])
    resumed = slow_shard[slow_shard["_shard"] == killed_shard]
    assert len(resumed) == at_kill[1] and int(resumed["cached"].sum()) >= at_kill[0], (at_kill, resumed)
