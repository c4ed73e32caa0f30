"""The state folder under concurrency, kill -9 and bad places.

Real processes on one fresh state folder: two ``eval-pipeline run`` at once (released together from a barrier after
their imports, so their first use of the Dagster and MLflow stores overlaps as tightly as it can) must both
succeed and leave every SQLite store with one schema (one alembic head, integrity ok). An MLflow run whose
process was SIGKILLed is ended as KILLED by the next run. A state folder that cannot be written, and ``list``
outside a project, get a message and exit 2, and create nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.cli import main

REPO = Path(__file__).resolve().parent.parent
SUITE = "concurrent"
ANSWERS = {"q1": ("2", "2"), "q2": ("4", "5"), "q3": ("6", "6"), "q4": ("8", "9")}
"""sample id -> (reference, precomputed response): exact_match is 2 of 4."""

BARRIER_CHILD = """
import sys, time
from pathlib import Path
import eval_pipeline.execution  # the slow imports (dagster, the assets) before the barrier
from eval_pipeline.cli import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""

OPEN_RUN_CHILD = """
import sys, time
from eval_pipeline.tracking.mlflow_log import open_experiment, start_run
client, experiment_id = open_experiment(sys.argv[1], "eval/killed")
print(start_run(client, experiment_id, "killed/while-logging", {"suite": "killed"}), flush=True)
time.sleep(600)
"""


def write_project(folder: Path) -> Path:
    """A suite of one precomputed model (no inference) in ``folder/evals``; returns the suites folder."""
    evals = folder / "evals"
    evals.mkdir(parents=True)
    (folder / "qa.jsonl").write_text("".join(
        f'{{"id": "{sid}", "prompt": "q {sid}?", "answer": "{ref}"}}\n' for sid, (ref, _) in ANSWERS.items()))
    (folder / "answers.jsonl").write_text("".join(
        f'{{"sample_id": "{sid}", "response": "{resp}"}}\n' for sid, (_, resp) in ANSWERS.items()))
    (evals / f"{SUITE}.yaml").write_text(
        f"suite: {SUITE}\n"
        "dataset: {uri: qa.jsonl, format: gen_qa}\n"
        "models:\n  - {name: answers, backend: precomputed, responses: answers.jsonl}\n"
        "scorers: [exact_match]\n"
        "schedule: null\n")
    return evals


def child_env(home: Path, suites: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "PYTEST_CURRENT_TEST")}
    env.update(EVAL_PIPELINE_HOME=str(home), EVAL_PIPELINE_SUITES=str(suites), MLFLOW_DISABLE_TELEMETRY="true",
               PYTHONPATH=str(REPO))
    return env


def run_together(argv: list[str], env: dict[str, str], barrier: Path, count: int = 2) -> list[tuple[int, str]]:
    """Start ``count`` CLI processes, release them together once all have imported; (exit code, stderr) each."""
    procs = [subprocess.Popen([sys.executable, "-c", BARRIER_CHILD, str(barrier), *argv], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    time.sleep(0.2)
    barrier.touch()
    stderrs = [proc.communicate(timeout=300)[1] for proc in procs]
    return [(proc.returncode, stderr) for proc, stderr in zip(procs, stderrs, strict=True)]


def alembic_heads(database: Path) -> list[str]:
    """The revisions in a store's alembic_version table (one when the schema was created once), after an
    integrity check."""
    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", database
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def assert_one_schema_each(home: Path) -> None:
    stores = [home / "dagster/history/runs.db", home / "dagster/history/runs/index.db",
              home / "dagster/schedules/schedules.db", home / "mlflow/mlflow.db"]
    for store in stores:
        assert store.is_file(), store
        assert len(alembic_heads(store)) == 1, store


@pytest.mark.slow
def test_two_cli_runs_started_together_on_a_fresh_state_folder_both_succeed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    suites = write_project(tmp_path / "project")
    for attempt in range(10):
        home = tmp_path / f"home{attempt}"
        results = run_together(["run", SUITE], child_env(home, suites), tmp_path / f"go{attempt}")
        for code, stderr in results:
            assert code == 0, f"attempt {attempt}: exit {code}\n{stderr[-3000:]}"
            assert "Traceback" not in stderr, f"attempt {attempt}:\n{stderr[-3000:]}"
        assert_one_schema_each(home)
        metrics = pd.read_parquet(home / "outputs" / SUITE / "metrics" / "answers.parquet")
        overall = metrics[metrics["metric"].eq("exact_match") & metrics["breakdown_key"].isna()]
        expected = sum(ref == resp for ref, resp in ANSWERS.values()) / len(ANSWERS)
        assert overall["value"].tolist() == [expected]

        monkeypatch.setenv("EVAL_PIPELINE_HOME", str(home))
        monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(suites))
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        capsys.readouterr()
        assert main(["list"]) == 0
        listed = capsys.readouterr().out
        assert listed.count("SUCCESS") == 2, listed
        _assert_mlflow_runs_finished(home, 2)


def _assert_mlflow_runs_finished(home: Path, count: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"eval/{SUITE}")
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.status for run in runs] == ["FINISHED"] * count


@pytest.mark.slow
def test_processes_opening_one_fresh_instance_at_once_create_its_storage_once(tmp_path: Path) -> None:
    """Four processes released together on a fresh Dagster home: one schema per storage, the config intact."""
    home = tmp_path / "home"
    script = ("import sys, time\nfrom pathlib import Path\nfrom eval_pipeline.instance import local_instance\n"
              "while not Path(sys.argv[1]).exists():\n    time.sleep(0.001)\n"
              "instance = local_instance()\nprint(len(instance.get_runs()))\n")
    env = child_env(home, tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "go")], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(0.2)
    (tmp_path / "go").touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "0", err[-3000:]
    from eval_pipeline.instance import DAGSTER_YAML

    assert (home / "dagster" / "dagster.yaml").read_text() == DAGSTER_YAML
    for store in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        assert len(alembic_heads(home / "dagster" / store)) == 1, store


# ---- kill -9 while an MLflow run is open ------------------------------------------------------------------------


@contextlib.contextmanager
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host (its run must be left alone)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def open_run_then_kill(tracking_uri: str, env: dict[str, str]) -> tuple[str, int]:
    """A child that opens an MLflow run with the project's helper and sleeps, SIGKILLed; (run id, its pid)."""
    proc = subprocess.Popen([sys.executable, "-c", OPEN_RUN_CHILD, tracking_uri], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return run_id, proc.pid


@pytest.mark.slow
def test_an_mlflow_run_of_a_killed_process_is_ended_as_killed_by_the_next_run(
        tmp_path: Path, eval_home: Path) -> None:
    from mlflow import MlflowClient

    from eval_pipeline.execution import run_suite
    from eval_pipeline.instance import local_instance
    from eval_pipeline.process_identity import HOST_TAG, PID_TAG
    from eval_pipeline.suites import load_suite
    from eval_pipeline.tracking import default_tracking_uri
    from eval_pipeline.tracking.stale_runs import ENDED_BY_TAG

    suites = write_project(tmp_path / "project")
    uri = default_tracking_uri()
    killed, pid = open_run_then_kill(uri, child_env(eval_home, suites))
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(killed).info.status == "RUNNING"
    assert client.get_run(killed).data.tags[PID_TAG] == str(pid)

    result = run_suite(load_suite(suites / f"{SUITE}.yaml"), local_instance())  # the next run cleans up first

    assert result.success
    run = client.get_run(killed)
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert f"pid {pid}" in run.data.tags[ENDED_BY_TAG]
    logged = client.get_run(result.models[0].mlflow_run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags[PID_TAG] == str(os.getpid()) and logged.data.tags[HOST_TAG]


def test_only_runs_of_gone_processes_of_this_host_are_ended(tmp_path: Path, eval_home: Path) -> None:
    from mlflow import MlflowClient

    from eval_pipeline.process_identity import HOST_TAG, PID_TAG
    from eval_pipeline.tracking.mlflow_log import open_experiment, start_run
    from eval_pipeline.tracking.stale_runs import end_orphaned_runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert end_orphaned_runs(uri) == [] and not (tmp_path / "mlflow.db").exists()  # no store: none created
    dead, dead_pid = open_run_then_kill(uri, child_env(eval_home, tmp_path))
    client, experiment_id = open_experiment(uri, "eval/other")
    with sleeper() as live:
        live_run = start_run(client, experiment_id, "live", {PID_TAG: str(live.pid)})
        elsewhere = start_run(client, experiment_id, "other-host", {HOST_TAG: "another-host", PID_TAG: str(dead_pid)})
        own = start_run(client, experiment_id, "this-process", {})
        finished = start_run(client, experiment_id, "finished", {PID_TAG: str(dead_pid)})
        client.set_terminated(finished, "FINISHED")

        assert end_orphaned_runs(uri) == [dead]
        assert end_orphaned_runs(uri) == []  # ended once

    reader = MlflowClient(tracking_uri=uri)
    statuses = {run_id: reader.get_run(run_id).info.status for run_id in (dead, live_run, elsewhere, own, finished)}
    assert statuses == {dead: "KILLED", live_run: "RUNNING", elsewhere: "RUNNING", own: "RUNNING",
                        finished: "FINISHED"}


# ---- a state folder that cannot be used; list outside a project ---------------------------------------------------


def test_a_state_folder_that_cannot_be_created_is_named_with_the_remedy(
        tmp_path: Path, eval_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    suites = write_project(tmp_path / "project")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "state"  # under a regular file: fails for root too
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(home))
    monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(suites))

    assert main(["run", SUITE]) == 2
    err = capsys.readouterr().err
    assert f"error: {home}: the state folder cannot be created (Not a directory)" in err
    assert "set EVAL_PIPELINE_HOME to a folder you can write to" in err and "Traceback" not in err

    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(tmp_path / "fine"))
    monkeypatch.setenv("DAGSTER_HOME", str(blocker / "dagster"))
    assert main(["run", SUITE]) == 2
    err = capsys.readouterr().err
    assert f"error: {blocker / 'dagster'}: the state folder cannot be created" in err and "DAGSTER_HOME" in err


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """``chattr +i``: not even root may create files in the folder."""
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_state_folder_is_named_with_the_remedy(
        tmp_path: Path, eval_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    suites = write_project(tmp_path / "project")
    monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(suites))
    eval_home.mkdir()
    with immutable(eval_home):
        assert main(["run", SUITE]) == 2
    err = capsys.readouterr().err
    assert f"error: {eval_home}: the state folder is not writable: set EVAL_PIPELINE_HOME to a folder" in err
    assert "Traceback" not in err and list(eval_home.iterdir()) == []


def test_list_outside_a_project_says_so_and_creates_no_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("EVAL_PIPELINE_HOME", "EVAL_PIPELINE_SUITES", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)

    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path}: not a project folder: there is no evals/ folder here" in err
    assert "EVAL_PIPELINE_SUITES" in err
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(tmp_path / "missing"))
    assert main(["list"]) == 2
    assert "EVAL_PIPELINE_SUITES names a folder that does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_list_in_a_project_before_any_run_creates_no_state(
        tmp_path: Path, eval_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path / "project")
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.delenv("EVAL_PIPELINE_SUITES", raising=False)

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"{SUITE}: qa.jsonl | models: answers (precomputed)" in out and "no past runs" in out
    assert not eval_home.exists()
