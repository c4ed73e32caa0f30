"""``Evaluator(spec)`` and ``Evaluator(inference, evaluations)``: the evaluator's parts from its first argument.

An ``ExecutionSpec`` names them all: the checkpoint to load (``checkpoint``, a folder ``save_pretrained`` wrote,
under ``checkpoint_dir`` when relative), the ``evaluations``, ``output_dir`` (default ``<checkpoint>/evaluations``),
``batch_size``, ``device``, ``dtype`` and ``encoding``; a field it gets wrong is an input error naming
``spec.<field>``. Anything else is the inference itself, with the evaluations beside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations.base import Evaluation
from eval_pipeline.evaluations.sources import ExecutionSpec, checkpoint_path

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE = re.compile(r"^(auto|cpu|mps|(cuda|xpu)(:\d+)?)$")


@dataclass(frozen=True)
class JobParts:
    """What an evaluator holds: the inference, its evaluations, where results go, the encoding, and its spec."""

    inference: Any
    evaluations: list[Evaluation]
    output_dir: Path | None
    encoding: Any
    spec: ExecutionSpec | None = None


def job_parts(first: Any, evaluations: Sequence[Evaluation] | None, output_dir: str | Path | None,
              encoding: Any) -> JobParts:
    """The parts named by ``Evaluator``'s arguments: a spec alone, or an inference with its evaluations."""
    if isinstance(first, ExecutionSpec):
        given = [name for name, value in (("evaluations", evaluations), ("output_dir", output_dir),
                                          ("encoding", encoding)) if value is not None]
        if given:
            raise TypeError(f"Evaluator(spec) takes {given[0]} from the spec: set spec.{given[0]} instead")
        return spec_parts(first)
    if evaluations is None:
        raise TypeError("Evaluator needs an ExecutionSpec, or an inference and its evaluations")
    return JobParts(first, list(evaluations), Path(output_dir) if output_dir is not None else None, encoding)


def spec_parts(spec: ExecutionSpec) -> JobParts:
    """The checked spec's checkpoint loaded as a ``LocalSampler`` (lazily: weights load on first use)."""
    check_spec(spec)
    path = checkpoint_path(spec.checkpoint, spec, field="spec.checkpoint")  # type: ignore[arg-type]
    from eval_pipeline.inference.local import LocalSampler

    sampler = LocalSampler(str(path), batch_size=spec.batch_size, device=spec.device, dtype=spec.dtype)
    output_dir = Path(spec.output_dir) if spec.output_dir is not None else path / "evaluations"
    return JobParts(sampler, list(spec.evaluations), output_dir, spec.encoding, spec)


def check_spec(spec: ExecutionSpec) -> None:
    """Every field ``Evaluator(spec)`` reads, checked; the first wrong one is an input error naming it."""
    evaluations = spec.evaluations
    if isinstance(evaluations, (str, bytes)) or not isinstance(evaluations, Sequence) or not evaluations:
        raise EvalInputError("an evaluator needs a list of at least one evaluation", field="spec.evaluations")
    for index, evaluation in enumerate(evaluations):
        if not isinstance(evaluation, Evaluation):
            raise EvalInputError(f"not an Evaluation: {type(evaluation).__name__}",
                                 field=f"spec.evaluations[{index}]")
    if spec.checkpoint is None:
        raise EvalInputError("name the checkpoint folder to evaluate", field="spec.checkpoint")
    for name in ("checkpoint", "checkpoint_dir", "output_dir"):
        value = getattr(spec, name)
        if value is not None and not isinstance(value, (str, Path)):
            raise EvalInputError(f"must be a path, got {type(value).__name__}", field=f"spec.{name}")
    size = spec.batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise EvalInputError(f"must be an integer ≥ 1, got {size!r}", field="spec.batch_size")
    if spec.dtype is not None and spec.dtype not in DTYPES:
        raise EvalInputError(f"must be one of {', '.join(DTYPES)}; got {spec.dtype!r}", field="spec.dtype")
    check_device(spec.device)


def check_device(device: Any) -> None:
    """``None``/``auto``, ``cpu``, ``mps``, or ``cuda[:index]`` (``xpu[:index]``) of a device this machine has."""
    if device is None:
        return
    if not isinstance(device, str) or not DEVICE.match(device):
        raise EvalInputError(f"not a torch device: {device!r} (cpu, cuda, cuda:<index>, mps or auto)",
                             field="spec.device")
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= available:
            raise EvalInputError(f"{device} is not on this machine ({available} CUDA device(s))",
                                 field="spec.device")
