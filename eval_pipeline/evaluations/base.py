"""The ``Evaluation`` base class: one dataset, one way of scoring a model on it, reduced to a number."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

REDUCTIONS = ("mean", "sum", "none")

Intermediate = tuple[np.ndarray, np.ndarray]
"""One sample's token ids and its mask (True at real tokens, False at padding)."""


@dataclass
class EvaluationOutcome:
    """Everything one evaluation run produced, before reduction.

    ``scores`` has one float per sample (shape ``(n, k)`` when each prompt was sampled k times); ``total`` is the
    evaluation's own "mean" when that is not the mean of ``scores`` (corpus perplexity, or the mean over items
    of rollouts with errors); ``metrics`` holds further figures (e.g. ``acc_norm``, ``errors``); ``rows`` is the
    per-sample table saved by ``Evaluator.run``. ``errors`` counts samples that could not be scored (a failed
    generation): their score is NaN, and they are left out of the mean and the sum, as the pipeline leaves error
    rows out of its metrics.
    """

    scores: np.ndarray
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    total: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    intermediates: list[Intermediate] | None = None
    errors: int = 0


def reduce_scores(scores: Sequence[float] | np.ndarray, reduce: str) -> float | np.ndarray:
    """``mean`` or ``sum`` of per-sample scores as a float (the mean of nothing is NaN); ``none``: the array."""
    check_reduction(reduce)
    values = np.asarray(scores, dtype=float)
    if reduce == "none":
        return values
    if reduce == "sum":
        return float(values.sum())
    return float(values.mean()) if values.size else float("nan")


def check_reduction(reduce: str) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}; got {reduce!r}")


def check_chunk_size(chunk_size: int) -> None:
    """``chunk_size`` is a whole number of at least 1 (ValueError otherwise)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer ≥ 1, got {chunk_size!r}")


def chunks(count: int, chunk_size: int) -> list[range]:
    """The positions ``0 … count-1`` in consecutive runs of ``chunk_size`` (one empty run when ``count`` is 0)."""
    check_chunk_size(chunk_size)
    return [range(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)] or [range(0)]


class Evaluation(ABC):
    """Abstract base class for all evaluations.

    Subclasses implement ``outcome`` (run the model, score every sample); ``__call__`` reduces it. A subclass
    written as the seed has it, implementing ``__call__`` itself and no ``outcome``, works too: its outcome (what
    ``Evaluator.run`` saves) is its ``__call__(..., reduce="none")``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__ and getattr(cls.outcome, "__isabstractmethod__", False):
            cls.outcome = _outcome_of_call  # type: ignore[method-assign]

    @property
    @abstractmethod
    def name(self) -> str:
        """Name of this evaluation."""

    def prefix(self) -> str:
        """Prefix for metrics from this evaluation."""
        return f"{self.name}/"

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples in this evaluation."""

    @abstractmethod
    def outcome(self, inference: Any, encoding: Any = None, *, return_intermediates: bool = False,
                **kwargs: Any) -> EvaluationOutcome:
        """Run the model on every sample and score it."""

    def __call__(self, inference: Any, encoding: Any = None, reduce: str = "mean",
                 return_intermediates: bool = False, **kwargs: Any) -> Any:
        """Run the evaluation and return a score, or ``(score, intermediates)`` with ``return_intermediates``.

        ``reduce``: "mean" / "sum" → float, "none" → np.ndarray of per-sample scores. Intermediates are one
        ``(token ids, mask)`` pair of numpy arrays per sample (per rollout), for an RL trainer to train on.
        Other keywords go to ``outcome``; ``chunk_size`` (default 200) is the number of samples sent to the model
        in one call: the model's batches never span two chunks.
        """
        check_reduction(reduce)
        if type(self).outcome is _outcome_of_call:
            raise NotImplementedError(f"{type(self).__name__} must implement outcome() or a __call__ of its own")
        result = self.outcome(inference, encoding, return_intermediates=return_intermediates, **kwargs)
        value = self.reduce(result, reduce)
        return (value, result.intermediates or []) if return_intermediates else value

    def reduce(self, result: EvaluationOutcome, reduce: str) -> float | np.ndarray:
        """The outcome as one number (or the per-sample array for ``none``)."""
        if reduce == "mean" and result.total is not None:
            return result.total
        if reduce == "sum" and result.errors:
            return float(np.nansum(result.scores))  # error samples are NaN: left out, as from the mean
        return reduce_scores(result.scores, reduce)

    def score(self, *args: Any) -> list[float]:
        """Return one float per evaluation sample. Subclasses override."""
        raise NotImplementedError

    @staticmethod
    def find_accumulation_steps(dataset_size: int, max_batch_size: int,
                                dp_replicate: int) -> tuple[int, int] | tuple[None, None]:
        """Find batch size and accumulation steps that evenly divide the dataset.

        Returns the largest ``batch_size`` ≤ ``max_batch_size`` with
        ``batch_size · dp_replicate · accumulation_steps == dataset_size`` (steps ≥ 1), or ``(None, None)`` when
        there is none: an empty dataset, or a size that the data-parallel replicas cannot share evenly. A batch
        of 1 always fits when they can. Negative sizes and a ``max_batch_size`` or ``dp_replicate`` below 1 are
        errors (ValueError).
        """
        for label, value, least in (("dataset_size", dataset_size, 0), ("max_batch_size", max_batch_size, 1),
                                    ("dp_replicate", dp_replicate, 1)):
            if int(value) != value or value < least:
                raise ValueError(f"{label} must be an integer ≥ {least}, got {value!r}")
        if dataset_size == 0 or dataset_size % dp_replicate:
            return None, None
        per_replica = dataset_size // dp_replicate
        for batch_size in range(min(max_batch_size, per_replica), 0, -1):
            if per_replica % batch_size == 0:
                return batch_size, per_replica // batch_size
        return None, None  # pragma: no cover - batch size 1 always divides


def _outcome_of_call(self: Evaluation, inference: Any, encoding: Any = None, *, return_intermediates: bool = False,
                     **kwargs: Any) -> EvaluationOutcome:
    """The outcome of an evaluation that implements only ``__call__``: its per-sample scores (``reduce="none"``;
    a single number when it gives one), their mean as the score, NaN scores counted as errors."""
    result = self(inference, encoding, reduce="none", return_intermediates=return_intermediates, **kwargs)
    value, intermediates = result if return_intermediates else (result, None)
    scores = np.atleast_1d(np.asarray(value, dtype=float))
    rows = pd.DataFrame({"index": range(len(scores)), "score": list(scores)})
    errors = int(np.isnan(scores).sum())
    total = float(np.nanmean(scores)) if 0 < errors < scores.size else None
    return EvaluationOutcome(scores=scores, rows=rows, total=total, intermediates=intermediates, errors=errors)
