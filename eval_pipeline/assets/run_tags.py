"""The tags that say which suite and model a Dagster run evaluates, whatever launched it.

The suite's jobs carry ``eval/suite``; a partition's run also gets ``eval/model``. A run launched otherwise (the
asset graph's Materialize button runs Dagster's implicit asset job, with no job tags) gets the missing ones from
``tag_run`` while it runs, so the UI's run filter finds CLI, SDK, sensor and UI runs by the same tags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from eval_pipeline.assets.partitions import partition_model

if TYPE_CHECKING:
    from eval_pipeline.suites.spec import Suite

SUITE_TAG = "eval/suite"
MODEL_TAG = "eval/model"
BACKEND_TAG = "eval/backend"
"""The backend a run's models call (``openai``, ``bedrock``): the instance's run queue limits runs per value."""


def suite_run_tags(suite: str, model: str | None = None, backend: str | None = None) -> dict[str, str]:
    """``eval/suite`` and, for one model's run, ``eval/model``; ``eval/backend`` for runs calling one backend."""
    return {SUITE_TAG: suite, **({MODEL_TAG: model} if model else {}), **({BACKEND_TAG: backend} if backend else {})}


def model_run_tags(suite: Suite, model: str) -> dict[str, str]:
    """The tags of a run that evaluates ``model`` of ``suite``, its backend included (so the run queue's per-backend
    limit applies to sensor, schedule and backfill runs alike)."""
    try:
        backend = suite.model(model).backend
    except KeyError:  # a partition of a model the suite no longer declares: no backend to name
        backend = None
    return suite_run_tags(suite.suite, model, backend=backend)


def tag_run(context: dg.AssetExecutionContext, suite: str) -> dict[str, str]:
    """Add the suite/model tags the run lacks (a tag already set is kept); returns those added."""
    model = partition_model(context.partition_key) if context.has_partition_key else None
    missing = {key: value for key, value in suite_run_tags(suite, model).items() if key not in context.run.tags}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)
    return missing
