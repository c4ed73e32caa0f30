"""`eval-pipeline ui` starts a real Dagster webserver and daemon on the workspace, and the location loads."""

from pathlib import Path

import pytest

from tests.dagster_live import (
    HOST,
    LiveDagster,
    _executable,
    _spawn,
    deployment_env,
    free_port,
    stop_groups,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_ui_serves_the_workspace_and_registers_declared_models(tmp_path: Path) -> None:
    env = deployment_env(tmp_path / "dagster", tmp_path / "state", REPO / "evals", tmp_path / "models")
    del env["DAGSTER_HOME"]  # `ui` puts the instance in the state folder itself
    port = free_port()
    process = _spawn("ui", [_executable("eval-pipeline"), "ui", "--host", HOST, "--port", str(port)], env, tmp_path)
    try:
        live = LiveDagster(f"http://{HOST}:{port}", tmp_path / "state" / "dagster", tmp_path / "state", [process])
        live.wait_ready()
        assert "smollm2-135m" in live.partition_keys("quickstart_eval")
        assert (tmp_path / "state" / "dagster" / "dagster.yaml").is_file()
        assert "MLflow UI:  mlflow ui --backend-store-uri sqlite:///" in process.tail()
    finally:
        stop_groups([process])
