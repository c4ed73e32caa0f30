"""Dagster assets, built per suite: samples → generations → scores → metrics."""

from eval_pipeline.assets.suite_assets import STAGES, build_suite_assets

__all__ = ["STAGES", "build_suite_assets"]
