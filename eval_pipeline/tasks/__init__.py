"""Task kinds: one object per kind of evaluation (generate, multiple_choice, perplexity, …) that owns its stages,
its production step, its scoring, its aggregation and its validation. The Dagster assets are generic over them.

A suite names its kind with ``task:``; kinds are registered by name in ``eval_pipeline.suites.task_kinds``.
"""

from eval_pipeline.tasks.base import Production, TaskKind, model_stages, task_kind

__all__ = ["Production", "TaskKind", "model_stages", "task_kind"]
