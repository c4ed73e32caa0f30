"""The persistent local Dagster instance under the state folder."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from eval_pipeline import paths

DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: 4
"""


def prepare_dagster_home() -> Path:
    """``$DAGSTER_HOME`` if set, else ``<state>/dagster`` with telemetry off; exported for child processes."""
    home = Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else paths.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return home


def local_instance() -> dg.DagsterInstance:
    prepare_dagster_home()
    return dg.DagsterInstance.get()
