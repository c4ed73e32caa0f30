"""kill -9 in the middle of remote generation, then re-run: nothing is lost, nothing finished is asked for again.

Real processes, real HTTP: the fake LLM server runs in its own process, ``eval-pipeline run`` runs as a child in its
own process group and is SIGKILLed once the fake has answered a few hundred requests; the same command is run again
to completion. Completions are saved to the SQLite request cache the moment they arrive, so the second run must
take every saved one from the cache and ask the server only for the rest.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from tests.fakes import FakeLLMServerProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ENTRY_POINT = Path(sys.executable).with_name("eval-pipeline")
CLI = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [sys.executable, "-m", "eval_pipeline.cli"]
SUITE = "resume_kill"
MODEL = "fake-chat"
SERVED_MODEL = "served-model"
ITEMS = 500
N_CONCURRENT = 16
KILL_AFTER = 150
"""Kill once the fake has completed at least this many requests (the window is ~150 of the 500 at 16 × 50 ms)."""


def write_suite(folder: Path, base_url: str) -> Path:
    """A 500-item gen_qa dataset and a suite with one openai model pointed at the fake."""
    evals = folder / "evals"
    evals.mkdir(parents=True)
    with (folder / "qa.jsonl").open("w") as handle:
        for i in range(ITEMS):
            handle.write(json.dumps({"id": f"q{i:03d}", "prompt": f"What is {i} plus {i}?", "answer": str(2 * i)})
                         + "\n")
    path = evals / f"{SUITE}.yaml"
    path.write_text(
        f"suite: {SUITE}\n"
        "dataset: {uri: qa.jsonl, format: gen_qa}\n"
        "models:\n"
        f"  - {{name: {MODEL}, backend: openai, base_url: '{base_url}/v1', model: {SERVED_MODEL}, "
        f"n_concurrent: {N_CONCURRENT}, timeout_s: 10, max_attempts: 3}}\n"
        "generation: {max_tokens: 16}\n"
        "scorers: [exact_match]\n"
        "max_error_rate: 0.0\n"
        "schedule: null\n")
    return path


def cli_env(home: Path, suites: Path) -> dict[str, str]:
    """The child's environment: its own state folder and suites folder, no inherited Dagster/MLflow/API settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "OPENAI_API_KEY", "PYTEST_CURRENT_TEST")}
    env.update(EVAL_PIPELINE_HOME=str(home), EVAL_PIPELINE_SUITES=str(suites), MLFLOW_DISABLE_TELEMETRY="true",
               PYTHONUNBUFFERED="1")
    return env


def completed(stats: dict[str, Any]) -> collections.Counter[str]:
    """The fake's successful, delivered responses per request key."""
    return collections.Counter(stats["completed"])


def wait_idle(fake: FakeLLMServerProcess, timeout_s: float = 10.0) -> dict[str, Any]:
    """The fake's stats once no request is in flight and the counters have settled (the handlers of a dead
    client finish as ``client_gone``; a reply that could not be written is taken back out of ``completed``)."""
    deadline = time.monotonic() + timeout_s
    previous: dict[str, Any] | None = None
    while True:
        stats = fake.stats(recent=0)
        settled = previous is not None and stats["completed"] == previous["completed"]
        if (stats["in_flight"] == 0 and settled) or time.monotonic() > deadline:
            return stats
        previous = stats
        time.sleep(0.05)


def kill_mid_generation(command: list[str], env: dict[str, str], fake: FakeLLMServerProcess) -> int:
    """Start the run in its own process group, SIGKILL the group once KILL_AFTER requests completed at the fake;
    returns how many had completed at the moment of the kill."""
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 45.0
    try:
        while True:
            done = fake.stats(recent=0)["completed_total"]
            if done >= KILL_AFTER:
                os.killpg(proc.pid, signal.SIGKILL)
                return done
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed after {done} "
                            f"completions\nstdout: {out[-2000:]}\nstderr: {err[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"only {done} completions after 45 s")
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.communicate()


def test_kill_9_mid_generation_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    with FakeLLMServerProcess("--latency", "0.05", "--known-model", SERVED_MODEL) as fake:
        suite_path = write_suite(project, fake.url)
        env = cli_env(home, suite_path.parent)
        command = [*CLI, "run", str(suite_path), "--json"]

        # 1. killed mid-generation
        at_kill = kill_mid_generation(command, env, fake)
        first = wait_idle(fake)
        assert first["in_flight"] == 0
        first_keys = set(completed(first))
        assert sum(completed(first).values()) == len(first_keys)  # no retries, nothing completed twice
        assert KILL_AFTER <= at_kill <= len(first_keys) < ITEMS, (at_kill, len(first_keys))

        # 2. the same command, to completion
        second_run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
        assert second_run.returncode == 0, second_run.stderr[-4000:]
        result = json.loads(second_run.stdout.strip().splitlines()[-1])
        second = fake.stats(recent=0)

    assert result["success"] and not result["errors"], result
    generation = result["generation"][MODEL]
    cached, generated = int(generation["cached"]), int(generation["generated"])
    assert cached > 0 and cached + generated == ITEMS and int(generation["errors"]) == 0, generation

    parquet = home / "outputs" / SUITE / "generations" / f"{MODEL}.parquet"
    assert Path(result["outputs"][MODEL]["generations"]) == parquet
    frame = pd.read_parquet(parquet)
    assert len(frame) == ITEMS and frame["sample_id"].is_unique
    assert set(frame["sample_id"]) == {f"q{i:03d}" for i in range(ITEMS)}
    assert frame["error"].isna().all() and frame["output"].notna().all()
    assert (frame["output"] == "echo: " + frame["sample_id"].map(lambda s: f"What is {int(s[1:])} plus "
                                                                           f"{int(s[1:])}?")).all()
    assert int(frame["cached"].sum()) == cached

    # The killed run did not stay STARTED holding its pool slot: the next run marked it failed.
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    statuses = sorted(r.status.value for r in instance.get_runs())
    instance.dispose()
    assert statuses == ["FAILURE", "SUCCESS"], statuses

    # At the fake: what the second run completed, by request key. Every request completes exactly once in it.
    second_only = completed(second) - completed(first)
    assert all(n == 1 for n in second_only.values()) and sum(second_only.values()) == generated
    assert set(second_only) | first_keys == set(completed(second)) and len(completed(second)) == ITEMS
    # Repeated work: keys completed in the first run and again in the second. Those are exactly the requests the
    # fake answered but the killed process never saved (the fake counts a reply before writing it, so the reply
    # was on the wire, or in a worker's hands, or waiting for the main thread to write it to SQLite when SIGKILL
    # landed); everything saved came from the cache. A worker thread holds one request at a time and the main
    # thread saves each completion in about a millisecond, far less than the 50 ms a worker needs for its next
    # one, so at most one per worker can be in that state: at most n_concurrent. 
    repeated = first_keys & set(second_only)
    print(f"killed after {at_kill} completions; {len(first_keys)} completed in run 1, {cached} saved (cached in "
          f"run 2), {generated} generated in run 2, {len(repeated)} answered twice")
    assert len(repeated) == len(first_keys) - cached, (len(repeated), len(first_keys), cached)
    assert len(repeated) <= N_CONCURRENT, sorted(repeated)
    assert second["duplicates"] == {k: 2 for k in repeated}
