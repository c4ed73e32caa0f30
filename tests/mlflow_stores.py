"""MLflow tracking stores for trace-logging tests: SQLite (what the pipeline uses), or MLflow's file store (spans
kept in the trace's artifact instead of a span table)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eval_pipeline.tracking.mlflow_log import open_experiment, start_run

STORE_KINDS = ["sqlite", "file"]


@contextmanager
def tracking_store(kind: str, folder: Path, experiment: str) -> Iterator[dict[str, str]]:
    """``{"uri", "experiment_id"}`` of a new store of ``kind`` in ``folder`` (one per module: creating a SQLite
    store's schema takes seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        if kind == "sqlite":
            uri = f"sqlite:///{folder / 'mlflow.db'}"
        else:
            patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (folder / "mlruns").as_uri()
        _, experiment_id = open_experiment(uri, experiment)
        yield {"uri": uri, "experiment_id": experiment_id}


def fresh_run(store: dict[str, str], experiment: str, name: str) -> dict[str, str]:
    """A new RUNNING run in the store: a test sees only its own traces (their ids derive from the run)."""
    client, experiment_id = open_experiment(store["uri"], experiment)
    return {**store, "run_id": start_run(client, experiment_id, name, {})}
