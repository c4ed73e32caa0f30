"""``task: multiple_choice``: each choice's log-likelihood after the question; acc and acc_norm."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.likelihood_runner import run_choice_likelihoods
from eval_pipeline.inference.planning import GenerationPlan, plan_choice_likelihoods
from eval_pipeline.metrics.aggregate import aggregate_scores
from eval_pipeline.scoring.likelihood_scores import CHOICE_METRICS, score_choices
from eval_pipeline.tasks.likelihood import LikelihoodTask
from eval_pipeline.tasks.passk import with_pass_k

if TYPE_CHECKING:
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.suites.spec import Suite


class MultipleChoiceTask(LikelihoodTask):
    name = "multiple_choice"
    prompt_shape = "choice"
    """With a suite ``prompt``: the rendered context, the choices and the right one's index."""

    def run(self, samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
            on_progress: Callable[[int, int], None], *, target_delimiter: str = " ") -> pd.DataFrame:
        return run_choice_likelihoods(samples, model, scorer, on_progress=on_progress,
                                      target_delimiter=target_delimiter)

    def plan_run(self, samples: pd.DataFrame, model: str, backend: str, scorer: LikelihoodScorer,
                 cache: RequestCache | None, *, target_delimiter: str = " ") -> GenerationPlan:
        return plan_choice_likelihoods(samples, model, backend, scorer=scorer, cache=cache,
                                       target_delimiter=target_delimiter)

    def run_options(self, suite: Suite) -> dict[str, object]:
        """The prompt's ``target_delimiter`` between the context and each choice (a space by default)."""
        return {"target_delimiter": suite.prompt.target_delimiter} if suite.prompt is not None else {}

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        return score_choices(samples, produced)

    def item_metrics(self, suite: Suite) -> tuple[str, ...]:
        """``acc`` and ``acc_norm``, 0 or 1 per item: what a release gate may pair by item."""
        return CHOICE_METRICS

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        return with_pass_k(suite, aggregate_scores(suite.suite, samples, scores, suite.breakdown_keys), scores)


MULTIPLE_CHOICE = MultipleChoiceTask()
