"""Where an ``Evaluator``'s model comes from: a trainer in memory, or a checkpoint folder on disk.

A trainer is anything with ``model`` and a tokenizer (``processing_class`` or ``tokenizer``), as a transformers
``Trainer`` has them; its ``args`` (``per_device_eval_batch_size``, ``output_dir``, ``run_name``) and ``state``
(``global_step``) are read when there. A checkpoint is a folder ``save_pretrained`` wrote (a ``Trainer``'s
``checkpoint-<step>``), named by a suffix under ``ExecutionSpec.checkpoint_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations.base import Evaluation

DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class ExecutionSpec:
    """How an ``Evaluator`` runs: its evaluations, where checkpoints are and results go, and the model's placement.

    ``checkpoint_dir``: the folder checkpoint suffixes are resolved in (a Trainer's ``output_dir``);
    ``output_dir``: where ``results.json`` goes (default: ``<checkpoint>/evaluations``); ``batch_size``, ``device``
    (default: CUDA when there is one) and ``dtype`` place the model; ``encoding``: the tokenizer for intermediates;
    ``checkpoint``: the checkpoint ``Evaluator(spec)`` loads (a folder, under ``checkpoint_dir`` when relative).
    """

    evaluations: Sequence[Evaluation] = ()
    checkpoint_dir: str | Path | None = None
    output_dir: str | Path | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str | None = None
    dtype: str | None = None
    encoding: Any = None
    name: str | None = None
    checkpoint: str | Path | None = None


EvaluatorConfig = ExecutionSpec
"""The seed's name for an ``Evaluator``'s config (``InferenceJob[EvaluatorConfig, M]``): its ``ExecutionSpec``."""


@dataclass(frozen=True)
class CheckpointConfig:
    """What ``Evaluator.from_checkpoint`` returns beside the evaluator: the checkpoint and the settings used.

    ``step``: the trainer state's ``global_step`` (``trainer_state.json``), else the number ending the folder's
    name, else None; ``model_config``: the checkpoint's ``config.json``; ``spec``: the spec with the overlay."""

    path: Path
    step: int | None
    model_config: dict[str, Any]
    trainer_state: dict[str, Any] | None
    spec: ExecutionSpec


def setting(config: Any, name: str, default: Any = None) -> Any:
    """``config[name]`` (a mapping) or ``config.name`` (any object); ``default`` when absent or None."""
    if config is None:
        return default
    value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
    return default if value is None else value


def overlay(spec: ExecutionSpec, runtime_cfg: Any) -> ExecutionSpec:
    """``spec`` with the fields ``runtime_cfg`` sets (a mapping, or an object whose public attributes are
    ExecutionSpec fields); a key that is no field is an input error naming it."""
    if runtime_cfg is None:
        return spec
    values = dict(runtime_cfg) if isinstance(runtime_cfg, Mapping) else {
        key: value for key, value in vars(runtime_cfg).items() if not key.startswith("_")}
    known = {f.name for f in dataclasses.fields(ExecutionSpec)}
    for key in values:
        if key not in known:
            raise EvalInputError(f"unknown runtime setting {key!r}; known: {', '.join(sorted(known))}",
                                 field=f"runtime_cfg.{key}")
    return dataclasses.replace(spec, **values)


def as_spec(spec: ExecutionSpec | Sequence[Evaluation]) -> ExecutionSpec:
    """An ``ExecutionSpec``; a plain list of evaluations is a spec with the defaults."""
    return spec if isinstance(spec, ExecutionSpec) else ExecutionSpec(evaluations=tuple(spec))


def is_config(value: Any) -> bool:
    """Whether ``value`` is a config (a spec, a mapping, an object with ``evaluations``) rather than a list of
    evaluations: ``Evaluator.from_trainer(trainer, config)`` as the seed's signature has it."""
    if value is None or isinstance(value, Evaluation):
        return False
    if isinstance(value, (ExecutionSpec, Mapping)):
        return True
    return not isinstance(value, Sequence) and hasattr(value, "evaluations")


# -- trainers --------------------------------------------------------------------------------------------------


def trainer_tokenizer(trainer: Any, encoding: Any = None) -> Any:
    """The trainer's tokenizer (``processing_class``, then ``tokenizer``), else ``encoding`` when it is a Hugging
    Face tokenizer; the sampler needs one to render prompts."""
    for name in ("processing_class", "tokenizer"):
        tokenizer = getattr(trainer, name, None)
        if tokenizer is not None:
            return tokenizer
    if encoding is not None and callable(getattr(encoding, "apply_chat_template", None)):
        return encoding
    raise EvalInputError(f"{type(trainer).__name__} has no tokenizer (processing_class or tokenizer): pass a Hugging "
                         "Face tokenizer as encoding", field="encoding")


def trainer_step(trainer: Any) -> int | None:
    """The trainer's ``state.global_step`` (None without one)."""
    step = getattr(getattr(trainer, "state", None), "global_step", None)
    return int(step) if isinstance(step, int) else None


def trainer_batch_size(trainer: Any) -> int:
    """The trainer's per-device evaluation batch size (``args.per_device_eval_batch_size``), else the default."""
    size = getattr(getattr(trainer, "args", None), "per_device_eval_batch_size", None)
    return int(size) if isinstance(size, int) and size >= 1 else DEFAULT_BATCH_SIZE


def trainer_name(trainer: Any) -> str:
    """A label for the trainer's model: ``args.run_name``, else the model's ``name_or_path``, else ``trainer``."""
    run_name = getattr(getattr(trainer, "args", None), "run_name", None)
    path = getattr(getattr(trainer, "model", None), "name_or_path", None)
    return str(run_name or path or "trainer")


def trainer_output_dir(trainer: Any) -> Path | None:
    """Where a trainer's evaluations go by default: ``<args.output_dir>/evaluations/step-<global_step>``."""
    root = getattr(getattr(trainer, "args", None), "output_dir", None)
    if not root:
        return None
    return Path(root) / "evaluations" / f"step-{trainer_step(trainer) or 0}"


def live_sampler(model: Any, tokenizer: Any, *, name: str, batch_size: int, revision: str | None) -> Any:
    """A ``LocalSampler`` over a model in memory (on the model's own device)."""
    from eval_pipeline.inference.local import LocalSampler

    return LocalSampler.from_loaded(model, tokenizer, name=name, batch_size=batch_size, revision=revision)


def is_inference(value: Any) -> bool:
    """Whether ``value`` is a Sampler or a LikelihoodScorer of this package (rather than a bare model)."""
    return callable(getattr(value, "identity", None)) and (
        callable(getattr(value, "generate", None)) or callable(getattr(value, "loglikelihood", None)))


# -- checkpoints -----------------------------------------------------------------------------------------------


def checkpoint_path(suffix: str | Path, spec: ExecutionSpec, field: str = "suffix") -> Path:
    """``suffix`` under ``spec.checkpoint_dir`` (as it is when absolute, or without a checkpoint_dir); a missing
    folder or one without ``config.json`` is an input error naming it (and ``field``)."""
    path = Path(suffix)
    if not path.is_absolute() and spec.checkpoint_dir is not None:
        path = Path(spec.checkpoint_dir) / path
    if not path.is_dir():
        raise EvalInputError("checkpoint folder not found", file=str(path), field=field)
    if not (path / "config.json").is_file():
        raise EvalInputError("not a model checkpoint (no config.json)", file=str(path), field=field)
    return path


def checkpoint_config(path: Path, spec: ExecutionSpec) -> CheckpointConfig:
    """The checkpoint's config.json, its trainer_state.json (when there) and its step."""
    model_config = _json(path / "config.json")
    state_file = path / "trainer_state.json"
    trainer_state = _json(state_file) if state_file.is_file() else None
    step = trainer_state.get("global_step") if trainer_state else None
    if not isinstance(step, int):
        digits = re.search(r"(\d+)$", path.name)
        step = int(digits.group(1)) if digits else None
    return CheckpointConfig(path=path, step=step, model_config=model_config, trainer_state=trainer_state, spec=spec)


def _json(file: Path) -> dict[str, Any]:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalInputError(f"cannot read: {exc}", file=str(file)) from exc
    if not isinstance(value, dict):
        raise EvalInputError("must hold a JSON object", file=str(file))
    return value
