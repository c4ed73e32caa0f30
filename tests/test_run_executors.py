"""The executor registry (``$EVAL_PIPELINE_EXECUTOR``) and a real multiprocess run launched from the code location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from eval_pipeline import run_executors
from eval_pipeline.assets.partitions import register_declared_models
from eval_pipeline.errors import EvalInputError
from eval_pipeline.run_executors import EXECUTOR_ENV, MAX_CONCURRENT_ENV, chosen_executor
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import load_suite

REPO_ROOT = Path(__file__).resolve().parent.parent
ITEMS = [
    {"id": "q1", "prompt": "What is the capital of France?", "referenceResponse": "Paris"},
    {"id": "q2", "prompt": "What is 2 + 2?", "referenceResponse": "4"},
    {"id": "q3", "prompt": "What is 3 * 3?", "referenceResponse": "9"},
]
RESPONSES = {"q1": "Paris", "q2": "5", "q3": "9"}  # two of three right


@pytest.fixture(autouse=True)
def no_executor_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the default: nothing chosen in the environment."""
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    monkeypatch.delenv(MAX_CONCURRENT_ENV, raising=False)


def _write_suite(root: Path) -> Path:
    """A one-model precomputed suite ``pair`` in ``root/suites`` (datasets beside it); returns the suites folder."""
    suites, data = root / "suites", root / "data"
    suites.mkdir(parents=True)
    data.mkdir(parents=True)
    (data / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ITEMS), encoding="utf-8")
    (data / "responses.jsonl").write_text(
        "".join(json.dumps({"sample_id": k, "response": v}) + "\n" for k, v in RESPONSES.items()), encoding="utf-8")
    spec = {"suite": "pair", "dataset": {"uri": str(data / "qa.jsonl")},
            "models": [{"name": "oracle", "backend": "precomputed", "responses": str(data / "responses.jsonl")}],
            "scorers": ["exact_match"], "schedule": None}
    (suites / "pair.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return suites


def test_default_is_in_process_and_every_name_resolves_to_dagsters_executor() -> None:
    from dagster_aws.ecs import ecs_executor
    from dagster_k8s import k8s_job_executor

    assert chosen_executor() is dg.in_process_executor
    expected = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor,
                "k8s": k8s_job_executor, "ecs": ecs_executor}
    assert set(run_executors.EXECUTORS.names()) >= set(expected)
    for name, executor in expected.items():
        assert chosen_executor(name) is executor, name


def test_the_environment_chooses_the_executor_of_every_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           eval_home: Path) -> None:
    suite = load_suite(_write_suite(tmp_path) / "pair.yaml")
    assert build_definitions([suite]).resolve_job_def("pair_eval").executor_def.name == "in_process"
    for name in ("multiprocess", "k8s", "ecs"):
        monkeypatch.setenv(EXECUTOR_ENV, f" {name} ")
        assert build_definitions([suite]).resolve_job_def("pair_eval").executor_def.name == name


@pytest.mark.parametrize("name", ["multiprocess", "k8s", "ecs"])
def test_max_concurrent_is_preset_from_the_environment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_CONCURRENT_ENV, "3")
    resolved = chosen_executor(name).config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    assert resolved.value["config"]["max_concurrent"] == 3


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_a_bad_max_concurrent_is_an_input_error(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_CONCURRENT_ENV, raw)
    with pytest.raises(EvalInputError, match=MAX_CONCURRENT_ENV) as caught:
        chosen_executor("multiprocess")
    assert repr(raw) in str(caught.value)


def test_an_unknown_executor_names_the_known_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  eval_home: Path) -> None:
    monkeypatch.setenv(EXECUTOR_ENV, "k9s")
    suite = load_suite(_write_suite(tmp_path) / "pair.yaml")
    with pytest.raises(EvalInputError) as caught:
        build_definitions([suite])
    message = str(caught.value)
    assert EXECUTOR_ENV in message and "'k9s'" in message and "did you mean 'k8s'" in message
    for name in ("ecs", "in_process", "k8s", "multiprocess"):
        assert name in message


def test_a_missing_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # as if the k8s extra were not installed
    with pytest.raises(EvalInputError, match=r"pip install 'eval-pipeline\[k8s\]'"):
        chosen_executor("k8s")


@pytest.mark.slow
def test_a_run_launched_from_the_code_location_runs_each_step_in_its_own_process(tmp_path: Path) -> None:
    """``dagster job execute`` on the workspace's module with ``multiprocess``: every step's events come from a
    child process (not the run's), and the metrics equal the count of right answers."""
    suites = _write_suite(tmp_path)
    dagster_home, state = tmp_path / "dagster", tmp_path / "state"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "EVAL_PIPELINE_", "MLFLOW_"))}
    env.update({"DAGSTER_HOME": str(dagster_home), "EVAL_PIPELINE_HOME": str(state),
                "EVAL_PIPELINE_SUITES": str(suites), EXECUTOR_ENV: "multiprocess", MAX_CONCURRENT_ENV: "2",
                "MLFLOW_DISABLE_TELEMETRY": "true"})
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        register_declared_models(instance, load_suite(suites / "pair.yaml"))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "eval_pipeline.definitions",
         "-j", "pair_eval", "--tags", json.dumps({"dagster/partition": "oracle"})],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == "oracle"
        events = [e for e in instance.all_logs(run.run_id) if e.dagster_event is not None]
    run_pid = {e.dagster_event.pid for e in events if e.dagster_event.event_type == dg.DagsterEventType.RUN_START}
    step_pids = {e.step_key: e.dagster_event.pid for e in events
                 if e.dagster_event.event_type == dg.DagsterEventType.STEP_START}
    assert set(step_pids) == {"pair__samples", "pair__generations", "pair__scores", "pair__metrics"}
    assert None not in run_pid and None not in step_pids.values(), (run_pid, step_pids)
    assert len(run_pid) == 1 and not run_pid & set(step_pids.values()), (run_pid, step_pids)
    assert len(set(step_pids.values())) == len(step_pids), step_pids

    metrics = pd.read_parquet(state / "outputs" / "pair" / "metrics" / "oracle.parquet")
    overall = metrics[(metrics.metric == "exact_match") & metrics.breakdown_key.isna()]
    right = sum(RESPONSES[row["id"]] == row["referenceResponse"] for row in ITEMS)
    assert overall.value.tolist() == [pytest.approx(right / len(ITEMS))]
    assert overall.n.tolist() == [len(ITEMS)]
