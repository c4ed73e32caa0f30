"""Adding a file to a logged MLflow run."""

from __future__ import annotations


def log_artifact(tracking_uri: str, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
    """Add a local file to a logged run's artifacts (also to a run already ended), under ``artifact_path``."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).log_artifact(run_id, local_path, artifact_path)
