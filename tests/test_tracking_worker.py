"""MLflow logging in a helper process (``eval_pipeline.tracking.worker``): answers, errors and the end of the
process; and a CLI run that logs through it while its own process never imports mlflow, matplotlib or torch."""

from __future__ import annotations

import json
import math
import operator
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from eval_pipeline.tracking.worker import (
    TrackingWorker,
    WorkerError,
    active_worker,
    background_log_path,
    run_deferred,
    run_logged,
    tracking_worker,
    wait_for_background_logging,
)

REPO = Path(__file__).resolve().parent.parent


class Unpicklable(Exception):
    """An exception that cannot cross a process boundary (its argument is a lock)."""


def raise_unpicklable() -> None:
    import threading

    raise Unpicklable(threading.Lock())


def test_calls_run_in_the_helper_in_order_and_raise_here(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking_worker(uri) as worker:
        assert isinstance(worker, TrackingWorker) and active_worker(uri) is worker
        assert active_worker(f"sqlite:///{tmp_path / 'other.db'}") is None
        first, second = worker.submit(operator.add, 2, 3), worker.submit(operator.mul, 4, 5)
        assert worker.result(second) == 20 and worker.result(first) == 5  # answers kept by ticket
        helper_pid = run_logged(uri, os.getpid)
        assert helper_pid != os.getpid()
        with pytest.raises(ValueError, match="math domain error") as raised:
            worker.call(math.sqrt, -1.0)
        assert "in the MLflow logging process" in "".join(raised.value.__notes__)
        with pytest.raises(WorkerError, match="Unpicklable"):
            worker.call(raise_unpicklable)
        assert worker.call(operator.neg, 7) == -7  # still serving after errors
    assert active_worker(uri) is None and worker._process.returncode == 0
    assert run_logged(uri, os.getpid) == os.getpid()  # no worker: this process
    assert (tmp_path / "mlflow.db").exists()  # warm_up opened (created) the store meanwhile


def test_a_helper_that_dies_is_an_error_not_a_hang(tmp_path: Path) -> None:
    with tracking_worker(f"sqlite:///{tmp_path / 'mlflow.db'}") as worker:
        with pytest.raises(WorkerError, match="ended before answering"):
            worker.call(os._exit, 3)
        with pytest.raises(WorkerError, match="has ended"):
            worker.call(operator.neg, 1)
    assert worker._process.returncode == 3


def append_when(gate: str, target: str, text: str) -> None:
    """Wait (bounded) for the file ``gate`` to exist, then append ``text`` to ``target`` and print it."""
    for _ in range(2400):
        if os.path.exists(gate):
            break
        __import__("time").sleep(0.05)
    with open(target, "a") as out:
        out.write(text)
    print(f"deferred output: {text}")


def test_a_deferred_call_runs_after_the_later_calls_and_closing_waits_for_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "order.txt"
    with tracking_worker(uri) as worker:
        run_deferred(uri, append_when, str(tmp_path), str(log), "deferred;")  # answered at once: not waited for
        worker.call(append_when, str(tmp_path), str(log), "ordinary;")
        assert log.read_text() == "ordinary;"
    assert log.read_text() == "ordinary;deferred;"  # closed: the deferred call has run
    run_deferred(uri, append_when, str(tmp_path), str(log), "here;")  # no worker: runs now, in this process
    assert log.read_text() == "ordinary;deferred;here;"


def test_a_worker_left_to_finish_alone_writes_to_its_log_and_can_be_waited_for(
        tmp_path: Path, eval_home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    gate, target = tmp_path / "go", tmp_path / "done.txt"
    worker = TrackingWorker(uri, finish_in_background=True)  # as the CLI's ``prestart`` makes it
    worker.defer(append_when, str(gate), str(target), "traces written")
    worker.defer(math.sqrt, -1.0)  # an error: logged in the background log, not raised here
    worker.close()
    assert worker._process.poll() is None and not target.exists()  # closing did not wait for it
    gate.touch()
    wait_for_background_logging(uri)
    assert target.read_text() == "traces written"
    worker._process.wait(timeout=60)
    log = background_log_path().read_text()
    assert "deferred output: traces written" in log and "ValueError: math domain error" in log
    assert "deferred output" not in capfd.readouterr().err  # nothing after the caller has moved on


def test_the_helper_ends_runs_of_dead_processes_first(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from eval_pipeline.process_identity import HOST_TAG, PID_TAG
    from eval_pipeline.tracking import open_experiment, start_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    client, experiment = open_experiment(uri, "eval/orphans")
    orphan = start_run(client, experiment, "orphan", {HOST_TAG: socket.gethostname(), PID_TAG: gone.stdout.strip()})
    with tracking_worker(uri):
        pass  # nothing asked: closing waits for the helper's first call
    assert MlflowClient(tracking_uri=uri).get_run(orphan).info.status == "KILLED"


HEAVY = ("mlflow", "matplotlib", "torch", "transformers", "boto3")


@pytest.mark.parametrize(("module", "absent"), [
    ("eval_pipeline.cli", ("dagster", "pandas", *HEAVY)),  # --help, --version, errors: instant
    ("eval_pipeline.execution", HEAVY),  # what a run imports before its steps: no MLflow, no plotting, no models
])
def test_importing_the_run_path_loads_no_heavy_library(module: str, absent: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(absent)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


RUN_AND_REPORT = """
import json, os, sys
from eval_pipeline.cli import main
code = main(["run", sys.argv[1], "--json"])
print(json.dumps({"pid": os.getpid(), "loaded": sorted(m for m in sys.modules if m.split(".")[0] in
      ("mlflow", "matplotlib", "torch", "transformers", "boto3"))}), file=sys.stderr)
sys.exit(code)
"""


def write_project(folder: Path, size: int = 30) -> Path:
    data = folder / "data"
    data.mkdir(parents=True)
    with (data / "qa.jsonl").open("w") as qa, (data / "answers.jsonl").open("w") as answers:
        for i in range(size):
            reference = f"answer {i}"
            qa.write(json.dumps({"id": f"q{i}", "prompt": f"Question {i}?", "referenceResponse": reference,
                                 "category": f"c{i % 3}"}) + "\n")
            answers.write(json.dumps({"sample_id": f"q{i}", "response": reference if i % 4 else "no"}) + "\n")
    (folder / "evals").mkdir()
    suite = folder / "evals" / "quick.yaml"
    suite.write_text("suite: quick\ndataset: {uri: data/qa.jsonl}\n"
                     "models: [{name: answers, backend: precomputed, responses: data/answers.jsonl}]\n"
                     "scorers: [exact_match, f1]\nbreakdown_keys: [category]\n")
    return suite


@pytest.mark.slow
def test_a_cli_run_logs_through_the_helper_and_never_imports_mlflow(tmp_path: Path) -> None:
    """Two runs (a fresh state folder, then warm) in a fresh process each: every output is there, the MLflow run
    belongs to the CLI's process, and that process imported none of the heavy libraries the answer does not need."""
    from mlflow import MlflowClient

    from eval_pipeline.process_identity import PID_TAG

    suite = write_project(tmp_path / "project")
    home = tmp_path / "home"
    env = {**os.environ, "EVAL_PIPELINE_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DAGSTER_HOME", None)
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, str(suite)], cwd=suite.parent.parent, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        process = json.loads(done.stderr.strip().splitlines()[-1])
        assert process["loaded"] == []
        run = client.get_run(result["outputs"]["answers"]["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags[PID_TAG] == str(process["pid"])
        assert run.data.tags["dagster.run_id"] == result["outputs"]["answers"]["dagster_run_id"]
        exact = next(m for m in result["metrics"] if m["metric"] == "exact_match" and not m["breakdown"])
        assert run.data.metrics["exact_match"] == pytest.approx(exact["value"]) == pytest.approx(22 / 30)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"items.json", "metrics.json", "metrics.csv", "metrics_by_breakdown.svg"} <= artifacts
        assert run.inputs.dataset_inputs[0].dataset.name == "quick"
        wait_for_background_logging(client.tracking_uri)  # the item traces are written after the answer
        traces = client.search_traces(locations=[run.info.experiment_id], max_results=100,
                                      filter_string=f"metadata.`mlflow.sourceRun` = '{run.info.run_id}'")
        assert len(traces) == 30
    assert len(client.search_runs([run.info.experiment_id])) == 2
