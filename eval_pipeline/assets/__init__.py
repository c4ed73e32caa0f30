"""Dagster assets, built per suite: samples → generations → scores → metrics."""

from eval_pipeline.assets.suite_assets import build_suite_assets, stage_key

__all__ = ["build_suite_assets", "stage_key"]
