"""Whole-suite checks run when a suite loads: the names it uses exist and its numbers fit together, so a launch
from the CLI, the UI, a sensor or a schedule fails before anything runs, not after inference is paid for.

The backend, scorer and judge-metric registries are consulted here; none of them imports ``suites`` at run time, so
this module may import them without an import cycle.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import backend
from eval_pipeline.judging.builtin import builtin_metric
from eval_pipeline.judging.metric import JudgeMetricError
from eval_pipeline.judging.setup import suite_judge_metrics
from eval_pipeline.scoring.registry import scorer_problem
from eval_pipeline.suites.cron import cron_problem
from eval_pipeline.suites.spec import Suite
from eval_pipeline.suites.task_kinds import TASK_KINDS
from eval_pipeline.suites.yaml_source import KeyPath
from eval_pipeline.tracking.promotion import target_kind


class SuiteProblem(EvalInputError):
    """A problem with a loaded suite, located by its key path (the loader turns the path into a line)."""

    def __init__(self, message: str, path: KeyPath, *, file: str | None = None) -> None:
        self.path = path
        super().__init__(message, file=file, field=".".join(str(p) for p in path))


def suite_problems(suite: Suite) -> Iterator[SuiteProblem]:
    """Every problem found, in file order of the keys concerned (the caller usually reports the first)."""
    for check in (_scorers, _generation, _pass_k, _schedule, _judge, _task_kind, _gates):
        yield from check(suite)


def check_suite(suite: Suite) -> None:
    """Raise the first problem of a suite (without line numbers: ``load_suite`` adds them for suite files)."""
    for problem in suite_problems(suite):
        raise problem


def _scorers(suite: Suite) -> Iterator[SuiteProblem]:
    for index, spec in enumerate(suite.scorers):
        problem = scorer_problem(spec)
        if problem is not None:
            key, reason = problem
            yield SuiteProblem(reason, ("scorers", index, key), file=suite.source_path)


def _generation(suite: Suite) -> Iterator[SuiteProblem]:
    temperature = suite.generation.temperature
    backends = [(m.name, m.backend) for m in suite.models]
    if suite.watch is not None:
        watched = getattr(suite.watch, suite.watch.source_kind)
        backends.append((f"watched checkpoints in {watched}", suite.watch.backend))
    for name, backend_name in backends:
        problem = backend(backend_name).temperature_problem(temperature)
        if problem is not None:
            yield SuiteProblem(f"{problem}, used by model {name!r}", ("generation", "temperature"),
                               file=suite.source_path)
            return


def _pass_k(suite: Suite) -> Iterator[SuiteProblem]:
    n = suite.generation.num_samples
    for index, k in enumerate(suite.pass_k):
        if k > n:
            yield SuiteProblem(f"pass@{k} needs at least {k} samples per item, but generation.num_samples is {n}: "
                               f"raise num_samples to {k} or more, or drop k={k}", ("pass_k", index),
                               file=suite.source_path)


def _schedule(suite: Suite) -> Iterator[SuiteProblem]:
    if suite.schedule is not None:
        problem = cron_problem(suite.schedule)
        if problem is not None:
            yield SuiteProblem(f"not a valid cron schedule: {problem}", ("schedule",), file=suite.source_path)


def _judge(suite: Suite) -> Iterator[SuiteProblem]:
    """The judge's metrics exist and parse (a kind that judges by its own rubrics, a traces suite's evaluators,
    reads only the judge's model)."""
    if suite.judge is None or not getattr(TASK_KINDS.get(suite.task), "reads_judge_metrics", True):
        return
    for index, name in enumerate(suite.judge.builtin_metrics):
        try:
            builtin_metric(name)
        except JudgeMetricError as exc:
            yield SuiteProblem(exc.reason, ("judge", "builtin_metrics", index), file=suite.source_path)
            return
    try:
        suite_judge_metrics(suite)
    except JudgeMetricError as exc:
        if exc.file != suite.source_path or exc.line is not None:
            raise  # located in a custom-metrics JSON file: that file and line are the place to look
        yield SuiteProblem(exc.reason, ("judge", *field_path(exc.field or "")), file=suite.source_path)


def _task_kind(suite: Suite) -> Iterator[SuiteProblem]:
    """Keys another task kind owns (``suite_keys``: a rollout's environment, a traces suite's traces block), then
    the kind's own checks (a rollout's environment imports, a traces suite's evaluators exist)."""
    kind = TASK_KINDS.get(suite.task)
    own = set(getattr(kind, "suite_keys", ()))
    for name in TASK_KINDS.names():
        for key in getattr(TASK_KINDS.get(name), "suite_keys", ()):
            if key not in own and getattr(suite, key, None) is not None:
                yield SuiteProblem(f"only for task {name!r}, not task {suite.task!r}", (key,), file=suite.source_path)
                return
    problems = getattr(kind, "problems", None)
    if problems is not None:
        yield from problems(suite)


def gateable_metrics(suite: Suite) -> list[str]:
    """The per-item metric names a release gate may name (the ``scorer`` values of the scores table, and the
    judge's metrics): those a task kind lists as ``item_metrics(suite)`` when it does (its scores table holds them,
    whatever ``scorers`` says), else the scorers and the metrics the kind scores with its own ranges."""
    kind = TASK_KINDS.get(suite.task)
    own = getattr(kind, "item_metrics", None)
    names = list(own(suite)) if own is not None else [spec.name for spec in suite.scorers] + \
        list(kind.score_ranges(suite))
    if suite.judge is not None and getattr(kind, "reads_judge_metrics", True):
        with contextlib.suppress(JudgeMetricError):  # reported by _judge
            names += [metric.name for metric in suite_judge_metrics(suite)]
    return list(dict.fromkeys(names))


def _gates(suite: Suite) -> Iterator[SuiteProblem]:
    """The gates' baseline is one of the suite's models and their metrics are metrics the suite scores; ``promote``
    needs gates, and an MLflow or SageMaker target that is a registry entry."""
    gates, file = suite.gates, suite.source_path
    if gates is not None:
        declared = [m.name for m in suite.models]
        if gates.baseline not in declared:
            yield SuiteProblem(f"baseline {gates.baseline!r} is not one of the suite's models ({', '.join(declared)})",
                               ("gates", "baseline"), file=file)
            return
        known = gateable_metrics(suite)
        refused = getattr(TASK_KINDS.get(suite.task), "ungateable_metrics", lambda _: {})(suite)
        for name in gates.metrics:
            if name in refused:
                yield SuiteProblem(f"{name!r} cannot be gated: {refused[name]}", ("gates", "metrics", name),
                                   file=file)
                return
            if name not in known:
                yield SuiteProblem(f"unknown gated metric {name!r}: the suite scores "
                                   f"{', '.join(known) or 'no metric'} per item", ("gates", "metrics", name), file=file)
                return
    if suite.promote is not None:
        if gates is None:
            yield SuiteProblem("promote needs 'gates': a model is promoted only when its release gates pass",
                               ("promote",), file=file)
            return
        for name, targets in suite.promote.targets.items():
            for target in [targets] if isinstance(targets, str) else targets:
                if target_kind(target) is None:
                    yield SuiteProblem(f"target of {name!r} must be a models:/<name>/<version> URI or a SageMaker "
                                       f"model package ARN, got {target!r}", ("promote", "targets", name), file=file)
                    return


def field_path(field: str) -> KeyPath:
    """``custom_metrics[0].customMetricDefinition.name`` as a key path."""
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+", field):
        parts.append(int(token) if token.isdigit() else token)
    return tuple(parts)
