"""From a suite's ``judge`` block to what judging needs: the metrics, the judge's parameters and its label."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.judging.custom import resolve_metrics
from eval_pipeline.judging.metric import JudgeMetric


class JudgeModel(Protocol):
    backend: str
    name: str
    model: str | None
    endpoint: str | None


class JudgeSpec(Protocol):
    """What judging reads of a suite's ``judge`` block (``suites.spec.JudgeSpec`` is one): judging depends on this
    shape, not on the suites package, which validates judge metrics through this module."""

    model: JudgeModel
    builtin_metrics: Any
    custom_metrics: Any
    verdict: str
    max_tokens: int
    seed: int


class Suite(Protocol):
    judge: JudgeSpec | None
    source_path: str | None

    def resolve_path(self, value: str) -> Path: ...


def suite_judge_metrics(suite: Suite) -> list[JudgeMetric]:
    """The suite's judge metrics, validated (raises JudgeMetricError naming the suite file and field)."""
    judge = suite.judge
    if judge is None:
        return []
    custom = judge.custom_metrics
    if isinstance(custom, str) and not custom.lstrip().startswith(("[", "{")):
        custom = str(suite.resolve_path(custom))  # a file, relative to the project root
    return resolve_metrics(judge.builtin_metrics, custom, source=suite.source_path)


def judge_params(judge: JudgeSpec) -> GenerationParams:
    """Pinned: temperature 0, the judge's seed, its token budget."""
    return GenerationParams(max_tokens=judge.max_tokens, temperature=0.0, top_p=1.0, seed=judge.seed)


def judge_label(judge: JudgeSpec) -> str:
    """The judge as recorded on every judgment row: backend and model (or endpoint)."""
    model = judge.model
    return f"{model.backend}:{model.model or model.endpoint or model.name}"


def judge_record(judge: JudgeSpec, metrics: list[JudgeMetric]) -> dict[str, object]:
    """What MLflow records of the judge: model, pinned parameters and every metric's definition."""
    return {"model": judge_label(judge), "verdict": judge.verdict, "temperature": 0.0, "seed": judge.seed,
            "max_tokens": judge.max_tokens,
            "metrics": [m.name for m in metrics],
            "definitions": [m.to_definition() for m in metrics if not m.builtin]}
