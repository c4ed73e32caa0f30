"""``task: perplexity``: each text's rolling log-likelihood; token perplexity, bits per byte and next-token accuracy
over the whole corpus."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.likelihood_runner import run_text_likelihoods
from eval_pipeline.inference.planning import GenerationPlan, plan_text_likelihoods
from eval_pipeline.metrics.corpus import CORPUS_METRICS, aggregate_corpus
from eval_pipeline.scoring.likelihood_scores import score_texts
from eval_pipeline.tasks.likelihood import LikelihoodTask
from eval_pipeline.tasks.passk import with_pass_k

if TYPE_CHECKING:
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.suites.spec import Suite


class PerplexityTask(LikelihoodTask):
    name = "perplexity"
    prompt_shape = "text"
    """With a suite ``prompt``: ``doc_to_text`` rendered is the text scored."""

    def run(self, samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
            on_progress: Callable[[int, int], None]) -> pd.DataFrame:
        return run_text_likelihoods(samples, model, scorer, on_progress=on_progress)

    def plan_run(self, samples: pd.DataFrame, model: str, backend: str, scorer: LikelihoodScorer,
                 cache: RequestCache | None) -> GenerationPlan:
        return plan_text_likelihoods(samples, model, backend, scorer=scorer, cache=cache)

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        return score_texts(produced)

    def item_metrics(self, suite: Suite) -> tuple[str, ...]:
        """None: every metric of the suite is a corpus figure (``ungateable_metrics``)."""
        return ()

    def ungateable_metrics(self, suite: Suite) -> dict[str, str]:
        """The corpus metrics, with why a release gate cannot pair them by item."""
        return dict.fromkeys(CORPUS_METRICS, "a corpus metric (sums over all texts, then one ratio) has no value per "
                                             "item to pair with the baseline's, and its mean over texts is not it")

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        """Corpus figures: sums over all texts before dividing, not means of per-text ratios."""
        return with_pass_k(suite, aggregate_corpus(suite.suite, samples, scores, suite.breakdown_keys), scores)


PERPLEXITY = PerplexityTask()
