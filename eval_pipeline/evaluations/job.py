"""``InferenceJob``: the seed's base of what evaluations run on (an ``Evaluator`` is one)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

C = TypeVar("C")
M = TypeVar("M")


class InferenceJob(Generic[C, M]):
    """A job holding a config (``C``) and the inference it runs (a Sampler or LikelihoodScorer over a model of
    type ``M``). An evaluation given a job as its ``inference`` runs on the job's own ``inference``."""

    config: C | None = None
    inference: Any = None


def runner_of(inference: Any) -> Any:
    """The Sampler or scorer to run: a job's own ``inference``, else ``inference`` as it is."""
    return inference.inference if isinstance(inference, InferenceJob) else inference
