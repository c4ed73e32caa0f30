"""A fresh SQLite MLflow store is created whole or not at all: a process killed while migrating it (the helper
process migrates it as soon as a run starts) leaves nothing that the next run trips over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eval_pipeline.tracking.mlflow_log import open_experiment

CREATE = "import sys; from eval_pipeline.tracking.mlflow_log import tracking_client; tracking_client(sys.argv[1])"


def kill_while_creating(uri: str, folder: Path) -> bool:
    """Start creating the store in a child and SIGKILL it while its temporary file exists; False when the child
    finished first."""
    child = subprocess.Popen([sys.executable, "-c", CREATE, uri], stderr=subprocess.DEVNULL)
    try:
        while child.poll() is None:
            if any(folder.glob(".mlflow.db.*.creating")):
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                return True
            time.sleep(0.002)
        return False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_store_killed_while_being_created_leaves_no_half_made_store(tmp_path: Path) -> None:
    folder = tmp_path / "mlflow"
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    assert any(kill_while_creating(uri, folder) for _ in range(5)), "the child never got to create the store"
    assert not (folder / "mlflow.db").exists()  # the half-migrated tables stayed in the temporary file

    client, experiment_id = open_experiment(uri, "after-the-kill")  # the next process creates it whole
    run = client.create_run(experiment_id, run_name="r")
    assert client.get_run(run.info.run_id).info.run_name == "r"
