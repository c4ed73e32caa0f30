"""MLflow runs left RUNNING by a process that died (kill -9, out of memory) while logging: the next run of this
host ends them as KILLED, as ``eval_pipeline.stale_runs`` fails the Dagster runs of such a process.

Runs are recognised by the host and pid tags ``start_run`` puts on every run this project opens.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from eval_pipeline.process_identity import HOST_TAG, PID_TAG, owner_gone
from eval_pipeline.tracking.mlflow_log import _mlflow, _sqlite_database, tracking_client
from eval_pipeline.tracking.sagemaker_arn import arn_tracking_scope

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

ENDED_BY_TAG = "eval.ended_by"
"""Set on a run ended here: which process found its own process gone."""


def end_orphaned_runs(tracking_uri: str) -> list[str]:
    """End this host's RUNNING runs whose process is gone with status KILLED; return their ids.

    A SQLite store that does not exist yet holds no runs and is not created.
    """
    database = _sqlite_database(tracking_uri)
    if database is not None and not database.exists():
        return []
    _mlflow()
    with arn_tracking_scope(tracking_uri):  # a SageMaker MLflow ARN: the plugin signs with MLflow's tracking URI
        return _end_orphaned_runs(tracking_uri)


def _end_orphaned_runs(tracking_uri: str) -> list[str]:
    from mlflow.entities import RunStatus, ViewType

    client = tracking_client(tracking_uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    host = socket.gethostname().replace("'", "\\'")
    query = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    ended = []
    for run in _all_runs(client, experiment_ids, query):
        if not owner_gone(run.data.tags):
            continue
        pid = run.data.tags.get(PID_TAG)
        client.set_tag(run.info.run_id, ENDED_BY_TAG,
                       f"pid {os.getpid()}: the process that logged it (pid {pid}) is gone")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        ended.append(run.info.run_id)
    if ended:
        logger.warning("ended %d MLflow run(s) left RUNNING by a process that is gone, as KILLED: %s",
                       len(ended), ", ".join(ended))
    return ended


def _all_runs(client: MlflowClient, experiment_ids: list[str], query: str) -> list[Run]:
    """Every run of these experiments matching ``query``, page by page."""
    from mlflow.entities import ViewType

    runs: list[Run] = []
    token = None
    while experiment_ids:
        page = client.search_runs(experiment_ids, query, run_view_type=ViewType.ALL, max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs
