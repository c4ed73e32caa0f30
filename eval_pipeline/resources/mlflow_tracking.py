"""MLflow tracking as a Dagster resource: a thin wrapper over the library's logger.

While a suite runs from the CLI or the SDK (``run_suite``, ``logging_helper``), its logging calls go to the helper
process that imported mlflow meanwhile (``eval_pipeline.tracking.worker``); elsewhere (the UI's runs, a process that
has imported mlflow already) they run in this process. New logging calls go through ``run_logged`` likewise.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace

import dagster as dg
import pandas as pd

from eval_pipeline.process_identity import process_tags
from eval_pipeline.tracking import EvaluationRecord, log_evaluation
from eval_pipeline.tracking.artifacts import log_artifact
from eval_pipeline.tracking.sagemaker_arn import call_with_tracking_uri
from eval_pipeline.tracking.worker import TrackingWorker, active_worker, run_deferred, run_logged, tracking_worker

logger = logging.getLogger(__name__)


class MlflowTrackingResource(dg.ConfigurableResource):
    """Logs one MLflow run per suite × model; a SQLite store under the state folder by default."""

    tracking_uri: str
    artifact_location: str | None = None
    enabled: bool = True

    def log(self, record: EvaluationRecord, experiment_name: str | None = None) -> str | None:
        if not self.enabled:
            return None
        record = replace(record, tags={**process_tags(), **record.tags})  # this process owns the run, wherever logged
        return run_logged(self.tracking_uri, call_with_tracking_uri, self.tracking_uri, log_evaluation, record,
                          tracking_uri=self.tracking_uri,
                          experiment_name=experiment_name, artifact_location=self.artifact_location)

    def log_comparison(self, suite: str, comparison: pd.DataFrame, pairwise: pd.DataFrame | None, *,
                       experiment_name: str | None = None, tags: dict[str, str] | None = None) -> str | None:
        if not self.enabled:
            return None
        from eval_pipeline.tracking.comparison_log import log_comparison

        return run_logged(self.tracking_uri, call_with_tracking_uri, self.tracking_uri, log_comparison, suite,
                          comparison, pairwise,
                          tracking_uri=self.tracking_uri, experiment_name=experiment_name,
                          artifact_location=self.artifact_location, tags={**process_tags(), **(tags or {})})

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        """Add a local file to a logged run's artifacts (also to a run already ended), under ``artifact_path``."""
        if not self.enabled:
            return
        run_logged(self.tracking_uri, call_with_tracking_uri, self.tracking_uri, log_artifact, self.tracking_uri,
                   run_id, local_path, artifact_path)

    def log_extras(self, kind: object, run_id: str, produced: pd.DataFrame, scores: pd.DataFrame,
                   judgments: pd.DataFrame | None, samples: pd.DataFrame | None = None) -> None:
        """What the task kind adds to a logged run (``TaskKind.log_extras``: each item's trace with its
        assessments), where the run itself was logged; deferred by a logging helper (the answer does not wait
        for it)."""
        if not self.enabled:
            return
        run_deferred(self.tracking_uri, call_with_tracking_uri, self.tracking_uri,
                     kind.log_extras, self.tracking_uri, run_id,  # type: ignore[attr-defined]
                     produced, scores, judgments, samples=samples)

    def end_orphaned_runs(self) -> list[str]:
        """End as KILLED the RUNNING runs of this host's dead processes; a store that cannot be read is logged,
        not raised (cleaning up must not stop a run)."""
        if not self.enabled or active_worker(self.tracking_uri) is not None:  # the helper has done it (``warm_up``)
            return []
        from eval_pipeline.tracking.stale_runs import end_orphaned_runs

        try:
            return end_orphaned_runs(self.tracking_uri)
        except Exception as exc:
            logger.warning("could not look for MLflow runs left RUNNING at %s: %s", self.tracking_uri, exc)
            return []


@contextlib.contextmanager
def logging_helper(resources: Mapping[str, object]) -> Iterator[TrackingWorker | None]:
    """While the block runs, the logging of the ``mlflow`` resource (when enabled) is done by a helper process
    that imports mlflow, opens the store and ends orphaned runs as soon as it starts; closed after the block,
    once its calls are done. A process that has imported mlflow already (a notebook, a test session) has nothing
    to hide: it logs itself."""
    tracking = resources.get("mlflow")
    if not isinstance(tracking, MlflowTrackingResource) or not tracking.enabled or "mlflow" in sys.modules:
        yield None
        return
    with tracking_worker(tracking.tracking_uri) as worker:
        yield worker
