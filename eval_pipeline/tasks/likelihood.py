"""What the log-likelihood task kinds share: the backends that give log-likelihoods, no judge, and a production
step that scores (through the request cache) instead of generating."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from eval_pipeline.inference import model_spec
from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
from eval_pipeline.inference.likelihood_cache import with_cache
from eval_pipeline.progress import Progress
from eval_pipeline.tasks.base import AnswersTable, Production, model_stages

if TYPE_CHECKING:
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.inference.planning import GenerationPlan
    from eval_pipeline.suites.spec import ModelSpec, Suite



class LikelihoodTask(AnswersTable):
    """A task kind scored by log-likelihoods: subclasses give ``name``, ``run`` (the production table), ``plan_run``
    and ``score``/``aggregate``."""

    name = "likelihood"
    production_stage = "generations"
    judgeable = False

    def run(self, samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
            on_progress: Callable[[int, int], None], **options: object) -> pd.DataFrame:
        raise NotImplementedError

    def plan_run(self, samples: pd.DataFrame, model: str, backend: str, scorer: LikelihoodScorer,
                 cache: RequestCache | None, **options: object) -> GenerationPlan:
        raise NotImplementedError

    def validate(self, suite: Suite) -> None:
        backends = model_spec.LIKELIHOOD_BACKENDS  # read now: plugins may register backends
        unfit = [m.name for m in suite.models if m.backend not in backends]
        if unfit:
            raise ValueError(f"task {self.name!r} scores log-likelihoods, which backends "
                             f"{', '.join(backends)} give; not models {unfit}")

    def stages(self, suite: Suite) -> tuple[str, ...]:
        return model_stages(self, suite)

    def produce(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                log: Callable[[str], None]) -> Production:
        scorer = with_cache(build_likelihood_scorer(suite, model), cache, log=log)
        progress = Progress(f"{suite.suite}/{model.name} log-likelihoods", log)
        try:
            frame = self.run(samples, model.name, scorer, on_progress=progress, **self.run_options(suite))
        finally:
            progress.close()
        stats = scorer.stats
        return Production(frame, {
            "requests": stats.requests, "cached": stats.cached, "generated": stats.sent,
            "errors": int(frame["error"].notna().sum()),
            "task": self.name, "items": len(frame), "backend": model.backend,
        }, summary=f"log-likelihoods for {model.name}: {stats.requests} scoring requests, {stats.cached} from cache, "
                   f"{stats.sent} scored",
            preview_columns=["sample_id", "output", "error"])

    def plan(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
             cache: RequestCache | None) -> GenerationPlan:
        return self.plan_run(samples, model.name, model.backend, build_likelihood_scorer(suite, model), cache,
                             **self.run_options(suite))

    def run_options(self, suite: Suite) -> dict[str, object]:
        """Keyword arguments of ``run`` and ``plan_run`` that the suite sets (none by default)."""
        return {}

    def params(self, suite: Suite) -> dict[str, object]:
        return {"task": self.name, "scorers": []}
