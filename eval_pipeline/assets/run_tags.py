"""The tags that say which suite and model a Dagster run evaluates, whatever launched it.

The suite's jobs carry ``eval/suite``; a partition's run also gets ``eval/model``. A run launched otherwise (the
asset graph's Materialize button runs Dagster's implicit asset job, with no job tags) gets the missing ones from
``tag_run`` while it runs, so the UI's run filter finds CLI, SDK, sensor and UI runs by the same tags.
"""

from __future__ import annotations

import dagster as dg

SUITE_TAG = "eval/suite"
MODEL_TAG = "eval/model"


def suite_run_tags(suite: str, model: str | None = None) -> dict[str, str]:
    """``eval/suite`` and, for one model's run, ``eval/model``."""
    return {SUITE_TAG: suite, **({MODEL_TAG: model} if model else {})}


def tag_run(context: dg.AssetExecutionContext, suite: str) -> dict[str, str]:
    """Add the suite/model tags the run lacks (a tag already set is kept); returns those added."""
    model = context.partition_key if context.has_partition_key else None
    missing = {key: value for key, value in suite_run_tags(suite, model).items() if key not in context.run.tags}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)
    return missing
