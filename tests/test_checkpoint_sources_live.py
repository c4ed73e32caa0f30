"""The MLflow registered-model sensor under a real ``dagster-daemon``, restarted between two new versions: each
version gets exactly one run, the cursor and run keys kept by the instance across the restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.dagster_live import (
    TERMINAL_STATUSES,
    LiveDagster,
    _executable,
    _spawn,
    deployment_env,
    live_dagster,
    stop_groups,
)

pytestmark = pytest.mark.slow

SENSOR = "reg_new_checkpoints"
TIMEOUT_S = 150.0  # the sensor ticks every 30 s


def _write_suite(root: Path, tracking_uri: str) -> Path:
    suites, data = root / "suites", root / "data"
    suites.mkdir(parents=True)
    data.mkdir()
    (data / "qa.jsonl").write_text(json.dumps({"id": "q1", "prompt": "2+2?", "referenceResponse": "4"}) + "\n",
                                   encoding="utf-8")
    (data / "base.jsonl").write_text(json.dumps({"sample_id": "q1", "response": "4"}) + "\n", encoding="utf-8")
    spec = {"suite": "reg", "dataset": {"uri": str(data / "qa.jsonl")},
            "models": [{"name": "base", "backend": "precomputed", "responses": str(data / "base.jsonl")}],
            "scorers": ["exact_match"], "schedule": None,
            "watch": {"mlflow_model": "chat", "tracking_uri": tracking_uri}}
    (suites / "reg.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return suites


def _runs_of(live: LiveDagster, partition: str) -> list[dict]:
    return live.runs(job="reg_eval", tags={"dagster/partition": partition})


def _settled(live: LiveDagster, partition: str) -> list[dict]:
    """The partition's runs once one exists and all have ended (the models:/ URI is not served yet: they may fail)."""
    runs = _runs_of(live, partition)
    return runs if runs and all(run["status"] in TERMINAL_STATUSES for run in runs) else []


def _ticks_after(live: LiveDagster, count: int) -> int:
    """Waits for the sensor to tick ``count`` more times; returns the new total."""
    start = len(live.sensor_ticks(SENSOR, limit=100))
    live.wait_until(lambda: len(live.sensor_ticks(SENSOR, limit=100)) >= start + count or None, TIMEOUT_S,
                    f"{count} more ticks of {SENSOR}")
    return start + count


def test_each_version_runs_once_across_a_daemon_restart(tmp_path: Path) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    registry.create_registered_model("chat")
    registry.create_model_version("chat", source="s3://models/chat/1")
    suites = _write_suite(tmp_path, tracking_uri)

    with live_dagster(tmp_path / "deployment", suites) as live:
        first = live.wait_until(lambda: _settled(live, "chat-v1"), TIMEOUT_S, "the run of chat-v1")
        assert first[0]["tags"]["eval/checkpoint_source"] == "mlflow:chat"
        assert first[0]["tags"]["eval/checkpoint_uri"] == "models:/chat/1"
        _ticks_after(live, 1)  # a tick that sees v1 again requests nothing

        daemon = next(p for p in live.processes if p.name == "daemon")
        stop_groups([daemon])
        env = deployment_env(live.dagster_home, live.state_home, suites, tmp_path / "deployment" / "models")
        restarted = _spawn("daemon-restarted", [_executable("dagster-daemon"), "run", "-w",
                                                str(Path(__file__).resolve().parent.parent / "workspace.yaml")],
                           env, tmp_path / "deployment" / "logs")
        live.processes[live.processes.index(daemon)] = restarted  # stopped with the deployment

        registry.create_model_version("chat", source="s3://models/chat/2")
        live.wait_until(lambda: _settled(live, "chat-v2"), TIMEOUT_S, "the run of chat-v2")
        _ticks_after(live, 1)

        assert len(_runs_of(live, "chat-v1")) == 1 and len(_runs_of(live, "chat-v2")) == 1
        triggered = live.runs(job="reg_eval", tags={"eval/trigger": "new_checkpoint"})
        assert sorted(run["tags"]["dagster/partition"] for run in triggered) == ["chat-v1", "chat-v2"]
