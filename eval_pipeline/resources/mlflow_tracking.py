"""MLflow tracking as a Dagster resource: a thin wrapper over the library's logger."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.tracking import EvaluationRecord, log_evaluation


class MlflowTrackingResource(dg.ConfigurableResource):
    """Logs one MLflow run per suite × model; a SQLite store under the state folder by default."""

    tracking_uri: str
    artifact_location: str | None = None
    enabled: bool = True

    def log(self, record: EvaluationRecord) -> str | None:
        if not self.enabled:
            return None
        return log_evaluation(record, tracking_uri=self.tracking_uri, artifact_location=self.artifact_location)
