"""One short version string per stage of a suite, from exactly what changes that stage's output.

Dagster reads them as the assets' ``code_version``: a materialization records the version it ran under, so a stage
whose version moved is *stale* in the UI, and declarative automation re-runs it (``automation/staleness.py``).

A stage's own inputs are the suite fields its output depends on (``STAGE_FIELDS``, plus what its task kind adds
through ``version_fields``) and the code that computes it (``STAGE_CODE`` packages, the task kind's own modules,
the modules of the suite's scorers, plus what the kind adds through ``version_code``). The model stages then chain:
a stage's version also folds in the versions of the model stages it reads, so a changed judge shows ``judgments``
*and* ``metrics`` stale at once (Dagster marks a partition stale for its own code version or a changed input data
version, never for a stale input). ``samples`` does not chain: its output has a content data version (the dataset
digest), so a reloaded dataset that did not change is not a new version downstream.

Versions are stable across processes and machines: canonical JSON of plain values (sorted keys), file contents
keyed by their path inside their package, never object ids, dict order or absolute paths.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_pipeline.judging.setup import judge_record, suite_judge_metrics
from eval_pipeline.scoring.registry import SCORERS
from eval_pipeline.tasks.base import task_kind

if TYPE_CHECKING:
    from eval_pipeline.suites.spec import Suite

PRODUCTION = "production"
"""The generic name of the stage the task kind names ``production_stage`` (``generations``, ``rollouts``, ...)."""

STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "samples": ("dataset", "breakdown_keys", "prompt", "lm_eval"),
    PRODUCTION: ("generation", "lm_eval"),
    "scores": ("scorers", "lm_eval"),
    "judgments": ("judge",),
    "metrics": ("breakdown_keys", "pass_k", "success_threshold", "max_error_rate", "gates", "lm_eval"),
    "comparison": ("baseline",),
}
"""The suite fields each stage's output depends on, for every task kind (a kind adds its own: ``version_fields``)."""

UNVERSIONED_FIELDS = frozenset({
    "suite", "description", "task", "models", "mlflow_experiment", "watch", "schedule", "source_path", "base_dir",
    "shards", "promote",
})
"""Suite fields that change no stage's output: names, where results are logged, where models come from, how
items are split across workers, what is done with a model that passed its gates, and the file's own location.
``models`` is per partition (a model's spec is not part of the stage's version: adding a model must not make the
others stale); ``task`` picks the kind, whose code is part of every stage's version."""

STAGE_CODE: dict[str, tuple[str, ...]] = {
    "samples": ("eval_pipeline.data", "eval_pipeline.lm_eval_tasks"),
    PRODUCTION: ("eval_pipeline.inference",),
    "scores": ("eval_pipeline.scoring",),
    "judgments": ("eval_pipeline.judging",),
    "metrics": ("eval_pipeline.metrics",),
    "comparison": ("eval_pipeline.metrics", "eval_pipeline.judging"),
}
"""The packages (or modules) whose code computes each stage, for every task kind."""

READS: dict[str, tuple[str, ...]] = {
    PRODUCTION: (),
    "scores": (PRODUCTION,),
    "judgments": (PRODUCTION,),
    "metrics": (PRODUCTION, "scores", "judgments"),
    "comparison": (PRODUCTION, "scores", "judgments"),
}
"""The model stages each stage reads (``samples`` is left out on purpose: see the module's docstring)."""

OPERATIONAL_MODEL_FIELDS = frozenset({
    "name", "batch_size", "server_startup_timeout_s", "n_concurrent", "timeout_s", "max_attempts", "mode",
    "batch_s3_uri", "batch_role_arn", "batch_poll_s", "batch_min_records", "api_key_env",
})
"""Fields of the judge's model spec that change how its requests are sent, not what it answers."""

VERSION_LENGTH = 16


@dataclass(frozen=True)
class StageInputs:
    """What one stage's output depends on: plain configuration values and the code (module or package names)."""

    config: Mapping[str, Any]
    code: tuple[str, ...]


def stage_inputs(suite: Suite) -> dict[str, StageInputs]:
    """Each stage's own inputs, by generic stage name (``production`` for the task kind's production stage)."""
    kind = task_kind(suite)
    extra_fields: Mapping[str, tuple[str, ...]] = getattr(kind, "version_fields", None) or {
        PRODUCTION: tuple(getattr(kind, "suite_keys", ()))}
    version_code = getattr(kind, "version_code", None)
    extra_code: Mapping[str, tuple[str, ...]] = version_code(suite) if version_code is not None else {}
    kind_code = _kind_modules(kind)
    inputs = {}
    for stage, fields in STAGE_FIELDS.items():
        names = dict.fromkeys((*fields, *extra_fields.get(stage, ())))
        config = {"task": suite.task, **{name: _field_value(suite, name) for name in names if hasattr(suite, name)}}
        code = (*STAGE_CODE[stage], *kind_code, *extra_code.get(stage, ()))
        inputs[stage] = StageInputs(config, code)
    inputs["scores"] = StageInputs(inputs["scores"].config, (*inputs["scores"].code, *_scorer_modules(suite)))
    judgments, metrics, comparison = inputs["judgments"], inputs["metrics"], inputs["comparison"]
    inputs["judgments"] = StageInputs({**judgments.config, "judge_metrics": _judge_metrics(suite)}, judgments.code)
    judge = suite.judge
    inputs["metrics"] = StageInputs(
        {**metrics.config, "human_labels": judge.human_labels if judge else None}, metrics.code)
    inputs["comparison"] = StageInputs(
        {**comparison.config, "pairwise": judge.pairwise if judge else False}, comparison.code)
    return inputs


def own_versions(suite: Suite) -> dict[str, str]:
    """Each stage's version from its own inputs only (generic stage names)."""
    return {stage: _digest({"config": _plain(inputs.config), "code": code_digest(inputs.code)})
            for stage, inputs in stage_inputs(suite).items()}


def stage_versions(suite: Suite) -> dict[str, str]:
    """The ``code_version`` of each asset stage of the suite, by its asset name (``generations`` or the kind's
    production stage, ``comparison`` also for ``pairwise``): own inputs, chained through the model stages read."""
    own = own_versions(suite)
    chained: dict[str, str] = {"samples": own["samples"]}
    for stage in (PRODUCTION, "scores", "judgments", "metrics", "comparison"):
        chained[stage] = _digest([own[stage], *(chained[read] for read in READS[stage])])
    production = task_kind(suite).production_stage
    named = {production if stage == PRODUCTION else stage: version for stage, version in chained.items()}
    named["pairwise"] = named["comparison"]
    return named


def stage_version(suite: Suite, stage: str) -> str:
    """The version of one asset stage (``samples``, ``generations``, ``scores``, ``judgments``, ``metrics``...)."""
    return stage_versions(suite)[stage]


def code_digest(names: tuple[str, ...]) -> str:
    """A digest of the source of these modules and packages (every ``.py`` file of a package), each file keyed by
    its path inside its top-level package, and of files named by path (keyed by their file name, so wherever the
    project lies): the same code gives the same digest on any machine. A module that cannot be found counts by its
    name."""
    return _digest(sorted({_code_key(name): _module_digest(name) for name in names}.items()))


def _is_file(name: str) -> bool:
    return name.endswith(".py") or "/" in name


def _code_key(name: str) -> str:
    return Path(name).name if _is_file(name) else name


@lru_cache(maxsize=256)
def _module_digest(name: str) -> str:
    if _is_file(name):
        path = Path(name)
        return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest() if path.is_file() else "missing"
    try:
        root, files = _source_files(name)
    except ImportError:
        return "missing"
    hasher = hashlib.sha256()
    for path in files:
        hasher.update(path.relative_to(root).as_posix().encode() + b"\0")
        hasher.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return hasher.hexdigest()


def _source_files(name: str) -> tuple[Path, list[Path]]:
    """The top-level package's folder and the source files of the module or package ``name`` (a module of
    eval_pipeline is found by path, not imported: a Dagster-layer module stays unimported)."""
    top = importlib.import_module(name.split(".")[0])
    if not hasattr(top, "__path__"):  # a top-level module, not a package: its one file
        path = Path(top.__file__ or "").resolve()
        return path.parent, [path]
    root = Path(top.__file__ or "").resolve().parent
    base = root.joinpath(*name.split(".")[1:])
    if base.is_dir():
        return root.parent, sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)
    if base.with_suffix(".py").is_file():
        return root.parent, [base.with_suffix(".py")]
    module = sys.modules.get(name) or importlib.import_module(name)
    path = Path(module.__file__ or "").resolve()
    return path.parent, [path]


def _kind_modules(kind: object) -> tuple[str, ...]:
    """The modules defining the task kind's class and its bases (its production, scoring and aggregation), from
    its own package and eval_pipeline (not the standard library's ``typing.Protocol``)."""
    own = {type(kind).__module__.split(".")[0], "eval_pipeline"}
    return tuple(dict.fromkeys(cls.__module__ for cls in type(kind).__mro__ if cls.__module__.split(".")[0] in own))


def _scorer_modules(suite: Suite) -> tuple[str, ...]:
    """The modules of the suite's scorer kinds (a plugin's scorer lives outside eval_pipeline)."""
    kinds = {spec.kind for spec in suite.scorers if spec.kind in SCORERS}
    return tuple(sorted({type(SCORERS.get(kind)).__module__ for kind in kinds}))


def _judge_metrics(suite: Suite) -> object:
    """What the judge is asked: each metric's definition (a custom metrics file's content, not its path)."""
    if suite.judge is None:
        return None
    kind = task_kind(suite)
    metrics = suite_judge_metrics(suite) if getattr(kind, "reads_judge_metrics", True) else []
    return judge_record(suite.judge, metrics)


def _field_value(suite: Suite, name: str) -> object:
    value = getattr(suite, name)
    if name == "judge" and value is not None:  # metrics read human_labels, the comparison pairwise; custom metrics
        judge = value.model_dump(mode="json", exclude={"human_labels", "pairwise", "custom_metrics"})  # by content
        judge["model"] = {k: v for k, v in judge["model"].items() if k not in OPERATIONAL_MODEL_FIELDS}
        return judge
    if name == "dataset":
        return value.model_dump(mode="json")  # the URI as written: where the file is on this machine is not a version
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _plain(value: object) -> object:
    """``value`` as plain JSON values (pydantic models dumped)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")  # type: ignore[union-attr]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _digest(value: object) -> str:
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))  # a non-plain value raises
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_LENGTH]
