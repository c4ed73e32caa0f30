"""The registry of task kinds, by name. Entries are import paths (loaded when first asked for), so ``suites`` never
imports ``tasks`` (which imports ``suites``); plugins add kinds through the ``eval_pipeline.task_kinds`` entry point
group."""

from __future__ import annotations

from typing import Any

from eval_pipeline.registry import Registry

TASK_KINDS: Registry[Any] = Registry("task kind", "eval_pipeline.task_kinds")
"""Name → a ``eval_pipeline.tasks.TaskKind`` object."""

TASK_KINDS.register("generate", "eval_pipeline.tasks.generate:GENERATE")
TASK_KINDS.register("multiple_choice", "eval_pipeline.tasks.multiple_choice:MULTIPLE_CHOICE")
TASK_KINDS.register("perplexity", "eval_pipeline.tasks.perplexity:PERPLEXITY")
TASK_KINDS.register("rollout", "eval_pipeline.tasks.rollout:ROLLOUT")
TASK_KINDS.register("traces", "eval_pipeline.tasks.traces:TRACES_TASK")
TASK_KINDS.register("lm_eval", "eval_pipeline.tasks.lm_eval:LM_EVAL")
