"""The MLflow run name and tags a launcher asks for, carried to the metrics asset in the Dagster run's tags.

An SDK evaluator sets ``eval_pipeline/mlflow_run_name`` (a prefix: each model's run is ``<prefix>/<model>``) and
``eval_pipeline/mlflow_tags`` (a JSON object of tags for every model's run) on its Dagster runs; the metrics asset
reads them back with ``run_labels`` whatever launched the run (this process, a webserver, a backfill).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

MLFLOW_RUN_NAME_TAG = "eval_pipeline/mlflow_run_name"
MLFLOW_TAGS_TAG = "eval_pipeline/mlflow_tags"


@dataclass(frozen=True)
class RunLabels:
    """A run-name prefix (None: the default ``<suite>/<model>``) and extra MLflow tags."""

    run_name_prefix: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def run_name(self, model: str) -> str | None:
        """``<prefix>/<model>``, or None for the tracking layer's default name."""
        return f"{self.run_name_prefix}/{model}" if self.run_name_prefix else None


def run_labels(run_tags: Mapping[str, str]) -> RunLabels:
    """The labels in a Dagster run's tags; a carrier tag that is not a JSON object of strings is ignored."""
    prefix = (run_tags.get(MLFLOW_RUN_NAME_TAG) or "").strip() or None
    try:
        tags = json.loads(run_tags.get(MLFLOW_TAGS_TAG) or "{}")
    except ValueError:
        tags = {}
    if not isinstance(tags, dict):
        tags = {}
    return RunLabels(prefix, {str(key): str(value) for key, value in tags.items()})
