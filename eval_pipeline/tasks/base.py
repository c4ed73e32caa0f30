"""The ``TaskKind`` protocol and its small result type.

A task kind is plain library code (no Dagster): the assets call it in a few lines, so a new kind of evaluation is
one module registered by name in ``eval_pipeline.suites.task_kinds.TASK_KINDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pandas as pd

from eval_pipeline.data.formats import load_samples
from eval_pipeline.inference.backends import build_sampler
from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
from eval_pipeline.inference.runner import generation_usage
from eval_pipeline.judging.likelihood_verdicts import run_likelihood_judgments
from eval_pipeline.judging.run import run_judgments
from eval_pipeline.judging.setup import judge_label, judge_params, suite_judge_metrics
from eval_pipeline.metrics.ranges import ValueRange
from eval_pipeline.scoring.items import item_table
from eval_pipeline.suites.task_kinds import TASK_KINDS

if TYPE_CHECKING:
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.inference.planning import GenerationPlan
    from eval_pipeline.judging.run import JudgeStats
    from eval_pipeline.suites.spec import ModelSpec, Suite

ProgressCallback = Callable[[int, int], None]


@dataclass
class Production:
    """What a task kind's production step made for one model: its table, the stage's metadata (plain values, in
    the order they are shown), the line logged when it is done, and the columns its preview shows. The summary is
    also the metadata's last ``summary`` entry, so whoever reads the stage's metadata (the CLI) can show it."""

    frame: pd.DataFrame
    metadata: dict[str, object] = field(default_factory=dict)
    summary: str = ""
    preview_columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.summary:
            self.metadata.setdefault("summary", self.summary)


@runtime_checkable
class TaskKind(Protocol):
    """One kind of evaluation: how its table of model outputs is produced, scored and aggregated."""

    name: str
    production_stage: str
    """The asset (and table) the models' outputs land in: ``generations`` (``rollouts`` for agents)."""
    judgeable: bool
    """Whether a suite of this kind may have a ``judge`` (its ``judge`` method rates the production table)."""

    def validate(self, suite: Suite) -> None:
        """Raise ``ValueError`` when the suite does not fit this kind (checked when the suite loads)."""

    def stages(self, suite: Suite) -> tuple[str, ...]:
        """The stages of one model partition, in order (``samples`` first, ``metrics`` last)."""

    def produce(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                log: Callable[[str], None]) -> Production:
        """Run the model over the samples (through the request cache when there is one)."""

    def plan(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
             cache: RequestCache | None) -> GenerationPlan:
        """What ``produce`` would send, without sending anything."""

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        """The scores table: one row per produced row × scorer."""

    def judge(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame, *, cache: RequestCache | None,
              on_progress: ProgressCallback | None = None) -> tuple[pd.DataFrame, JudgeStats]:
        """The judgments table (judgeable kinds): the suite's judge over the production table."""

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        """The metrics table from the production table and the scores (judgments' scores included when the suite
        has a judge)."""

    def params(self, suite: Suite) -> dict[str, object]:
        """What this kind adds to the run's logged parameters (``task``, ``scorers``)."""

    def pool(self, suite: Suite) -> str:
        """The Dagster pool of the production step (runs calling one service share its limit)."""

    def score_ranges(self, suite: Suite) -> dict[str, ValueRange]:
        """Scorers whose scores are not in [0, 1], with their range (for paired comparisons)."""

    def usage(self, produced: pd.DataFrame) -> dict[str, float]:
        """Totals of the production table for the MLflow run: requests, errors, tokens, cost, latency."""

    def items(self, samples: pd.DataFrame, produced: pd.DataFrame, scores: pd.DataFrame,
              judgments: pd.DataFrame | None) -> pd.DataFrame:
        """The per-item table people read (an MLflow table artifact)."""

    def log_extras(self, tracking_uri: str, run_id: str, produced: pd.DataFrame, scores: pd.DataFrame,
                   judgments: pd.DataFrame | None, samples: pd.DataFrame | None = None) -> None:
        """Anything else the kind logs to the model's MLflow run (each item's trace with its assessments, a
        rollout's trace, a session's assessments)."""


class AnswersTable:
    """What kinds whose production table is the ``generations`` table share: its pool, usage and item table."""

    def score_ranges(self, suite: Suite) -> dict[str, ValueRange]:
        """None: every scorer and judge metric scores in [0, 1]."""
        return {}

    def pool(self, suite: Suite) -> str:
        """``inference-<backend>``, or ``inference-mixed`` when the suite's models use several backends."""
        backends = {m.backend for m in suite.models} | ({suite.watch.backend} if suite.watch else set())
        return f"inference-{backends.pop()}" if len(backends) == 1 else "inference-mixed"

    def usage(self, produced: pd.DataFrame) -> dict[str, float]:
        return generation_usage(produced)

    def items(self, samples: pd.DataFrame, produced: pd.DataFrame, scores: pd.DataFrame,
              judgments: pd.DataFrame | None) -> pd.DataFrame:
        return item_table(samples, produced, scores, judgments)

    def judge(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame, *, cache: RequestCache | None,
              on_progress: ProgressCallback | None = None) -> tuple[pd.DataFrame, JudgeStats]:
        """One judgment per answer × judge metric: the judge writes a verdict line, or (``verdict: likelihood``)
        the most likely rating level wins."""
        judge = suite.judge
        assert judge is not None
        metrics = suite_judge_metrics(suite)
        if judge.verdict == "likelihood":
            return run_likelihood_judgments(samples, produced, metrics, build_likelihood_scorer(suite, judge.model),
                                            judge_model=judge_label(judge), on_progress=on_progress, cache=cache)
        return run_judgments(samples, produced, metrics, build_sampler(suite, judge.model, samples),
                             judge_params(judge), judge_model=judge_label(judge), cache=cache,
                             on_progress=on_progress)

    def log_extras(self, tracking_uri: str, run_id: str, produced: pd.DataFrame, scores: pd.DataFrame,
                   judgments: pd.DataFrame | None, samples: pd.DataFrame | None = None) -> None:
        """Each answer as an MLflow trace in the model's run: input, output, the model call, the scores and
        judgments as assessments, the reference as an expectation (``tracking.item_traces``)."""
        from eval_pipeline.tracking.item_traces import log_item_traces

        log_item_traces(samples if samples is not None else pd.DataFrame(), produced, scores, judgments,
                        tracking_uri=tracking_uri, run_id=run_id)


def model_stages(kind: TaskKind, suite: Suite) -> tuple[str, ...]:
    """The usual stages: samples, the production stage, scores, judgments when the suite has a judge, metrics."""
    return ("samples", kind.production_stage, "scores", *(("judgments",) if suite.judge else ()), "metrics")


def suite_samples(suite: Suite, limit: int | None = None, sample_ids: list[str] | None = None) -> pd.DataFrame:
    """The suite's items as the samples table: its dataset read and converted, or what its task kind reads instead
    (``load_samples``: a traces suite's sessions); only ``sample_ids`` when given (in the dataset's order)."""
    limit = None if sample_ids is not None else limit or suite.dataset.limit
    loader = getattr(task_kind(suite), "load_samples", None)
    if loader is not None:
        samples = loader(suite, limit, sample_ids)
    elif suite.prompt is not None:
        from eval_pipeline.tasks.prompting import prompt_samples

        samples = prompt_samples(suite, getattr(task_kind(suite), "prompt_shape", "answer"), limit)
    else:
        samples = load_samples(suite.resolve_uri(suite.dataset.uri), suite.dataset.format, limit,
                               breakdown_keys=suite.breakdown_keys)
    if sample_ids is None:
        return samples
    return samples[samples["sample_id"].isin(set(sample_ids))].reset_index(drop=True)


def task_kind(suite: Suite) -> TaskKind:
    """The task kind a suite names (``UnknownEntryError`` listing the known kinds if none is registered)."""
    return TASK_KINDS.get(suite.task)
