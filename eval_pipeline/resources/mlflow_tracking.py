"""MLflow tracking as a Dagster resource: a thin wrapper over the library's logger."""

from __future__ import annotations

import logging

import dagster as dg
import pandas as pd

from eval_pipeline.process_identity import process_tags
from eval_pipeline.tracking import EvaluationRecord, log_evaluation

logger = logging.getLogger(__name__)


class MlflowTrackingResource(dg.ConfigurableResource):
    """Logs one MLflow run per suite × model; a SQLite store under the state folder by default."""

    tracking_uri: str
    artifact_location: str | None = None
    enabled: bool = True

    def log(self, record: EvaluationRecord, experiment_name: str | None = None) -> str | None:
        if not self.enabled:
            return None
        return log_evaluation(record, tracking_uri=self.tracking_uri, experiment_name=experiment_name,
                              artifact_location=self.artifact_location)

    def log_comparison(self, suite: str, comparison: pd.DataFrame, pairwise: pd.DataFrame | None, *,
                       experiment_name: str | None = None, tags: dict[str, str] | None = None) -> str | None:
        if not self.enabled:
            return None
        from eval_pipeline.tracking.comparison_log import log_comparison

        return log_comparison(suite, comparison, pairwise, tracking_uri=self.tracking_uri,
                              experiment_name=experiment_name, artifact_location=self.artifact_location,
                              tags={**process_tags(), **(tags or {})})

    def end_orphaned_runs(self) -> list[str]:
        """End as KILLED the RUNNING runs of this host's dead processes; a store that cannot be read is logged,
        not raised (cleaning up must not stop a run)."""
        if not self.enabled:
            return []
        from eval_pipeline.tracking.stale_runs import end_orphaned_runs

        try:
            return end_orphaned_runs(self.tracking_uri)
        except Exception as exc:
            logger.warning("could not look for MLflow runs left RUNNING at %s: %s", self.tracking_uri, exc)
            return []
