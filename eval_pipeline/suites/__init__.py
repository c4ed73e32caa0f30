"""Suites: evaluations described as YAML files."""

from eval_pipeline.suites.checks import SuiteProblem, check_suite
from eval_pipeline.suites.loading import find_suite, load_suite, load_suites
from eval_pipeline.suites.spec import (
    DatasetSpec,
    GenerationSpec,
    ModelSpec,
    ScorerSpec,
    Suite,
    WatchSpec,
)

__all__ = [
    "DatasetSpec",
    "GenerationSpec",
    "ModelSpec",
    "ScorerSpec",
    "Suite",
    "SuiteProblem",
    "WatchSpec",
    "check_suite",
    "find_suite",
    "load_suite",
    "load_suites",
]
