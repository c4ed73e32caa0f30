"""Which Dagster executor runs a run's steps, chosen by name in ``$EVAL_PIPELINE_EXECUTOR``.

The same definitions run everywhere; only the executor changes:

- ``in_process`` (default): every step in the run's process (a process per step costs seconds on a laptop);
- ``multiprocess``: one child process per step (``dg.multiprocess_executor``), at most
  ``$EVAL_PIPELINE_MAX_CONCURRENT`` at once (default: one per CPU);
- ``k8s``: one Kubernetes Job per step (``dagster_k8s.k8s_job_executor``; needs the ``k8s`` extra and the
  ``K8sRunLauncher``);
- ``ecs``: one ECS task per step (``dagster_aws.ecs.ecs_executor``; needs the ``EcsRunLauncher``).

Each name maps to a builder in a ``Registry`` (a plugin adds one through the ``eval_pipeline.executors`` entry point
group); the optional libraries are imported only when their executor is chosen. ``execute_in_process`` (the CLI's
``eval-pipeline run``) always runs in process, whatever is chosen here.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import dagster as dg

from eval_pipeline.errors import EvalInputError
from eval_pipeline.registry import Registry

EXECUTOR_ENV = "EVAL_PIPELINE_EXECUTOR"
MAX_CONCURRENT_ENV = "EVAL_PIPELINE_MAX_CONCURRENT"
DEFAULT_EXECUTOR = "in_process"

ExecutorBuilder = Callable[[int | None], dg.ExecutorDefinition]
"""Builds the executor; the argument is the per-run step limit (None: the executor's own default)."""

EXECUTORS: Registry[ExecutorBuilder] = Registry("executor", entry_point_group="eval_pipeline.executors")


def in_process(max_concurrent: int | None) -> dg.ExecutorDefinition:
    """Every step in the run's process (``max_concurrent`` does not apply: steps run one after another)."""
    return dg.in_process_executor


def multiprocess(max_concurrent: int | None) -> dg.ExecutorDefinition:
    """A child process per step; needs a reconstructable job (a run launched from the code location)."""
    return _limited(dg.multiprocess_executor, max_concurrent)


def k8s(max_concurrent: int | None) -> dg.ExecutorDefinition:
    """A Kubernetes Job per step, in the run's image; the per-step ``dagster-k8s/config`` tag sets its resources."""
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise _missing_extra("k8s", "dagster-k8s", "k8s", exc) from None
    return _limited(k8s_job_executor, max_concurrent)


def ecs(max_concurrent: int | None) -> dg.ExecutorDefinition:
    """An ECS task per step, inheriting the run task's network and role; ``ecs/cpu``, ``ecs/memory`` tags size it."""
    try:
        from dagster_aws.ecs import ecs_executor
    except ImportError as exc:
        raise _missing_extra("ecs", "dagster-aws", None, exc) from None
    return _limited(ecs_executor, max_concurrent)


for _name, _builder in {"in_process": in_process, "multiprocess": multiprocess, "k8s": k8s, "ecs": ecs}.items():
    EXECUTORS.register(_name, _builder)


def executor_name() -> str:
    """The chosen executor's name: ``$EVAL_PIPELINE_EXECUTOR`` (trimmed), else ``in_process``."""
    return (os.environ.get(EXECUTOR_ENV) or "").strip() or DEFAULT_EXECUTOR


def max_concurrent() -> int | None:
    """``$EVAL_PIPELINE_MAX_CONCURRENT`` as a positive int, or None when unset; anything else is an input error."""
    raw = (os.environ.get(MAX_CONCURRENT_ENV) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise EvalInputError(f"must be a positive integer, got {raw!r}", field=MAX_CONCURRENT_ENV)
    return int(raw)


def chosen_executor(name: str | None = None) -> dg.ExecutorDefinition:
    """The executor named ``name`` (default: ``executor_name()``); an unknown name is an input error listing the
    known ones."""
    name = name or executor_name()
    if name not in EXECUTORS:
        raise EvalInputError(EXECUTORS.unknown(name), field=EXECUTOR_ENV)
    return EXECUTORS.get(name)(max_concurrent())


def _limited(executor: dg.ExecutorDefinition, limit: int | None) -> dg.ExecutorDefinition:
    """``executor`` with ``max_concurrent`` fixed (its other keys at their defaults); unlimited: as it is, every key
    configurable at launch (``execution: {config: …}``)."""
    if limit is None:
        return executor
    return executor.configured({"max_concurrent": limit}, name=executor.name)


def _missing_extra(name: str, package: str, extra: str | None, exc: ImportError) -> EvalInputError:
    remedy = f"pip install 'eval-pipeline[{extra}]'" if extra else f"pip install {package}"
    return EvalInputError(f"the {name!r} executor needs {package} ({exc}); install it: {remedy}", field=EXECUTOR_ENV)
