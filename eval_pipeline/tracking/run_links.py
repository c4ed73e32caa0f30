"""Where an MLflow run is shown: its page on a tracking server, when the tracking URI is one."""

from __future__ import annotations

from urllib.parse import urlparse


def serves_pages(tracking_uri: str) -> bool:
    """True for an http(s) tracking server (its UI shows each run); False for a local store (SQLite, files)."""
    return urlparse(tracking_uri).scheme in ("http", "https")


def run_page_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the tracking server's UI, or None when ``tracking_uri`` is no server."""
    if not serves_pages(tracking_uri):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def experiment_page_url(tracking_uri: str, experiment_id: str) -> str | None:
    """The experiment's list of runs in the tracking server's UI, or None when ``tracking_uri`` is no server.

    MLflow 3.17's UI lays an experiment out by its global GenAI / "Model training" switch (the ``workflowType``
    query parameter, else the browser's last choice, else GenAI: the Overview and Traces pages), not by the
    experiment's ``mlflow.experimentKind`` tag; the parameter makes the link open on the runs."""
    if not serves_pages(tracking_uri):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiment_of(tracking_uri: str, run_id: str) -> str:
    """The id of the experiment a run belongs to (asked of the tracking store)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri).get_run(run_id).info.experiment_id
