"""``task: generate``: models answer each item; scorers (and a judge) score the answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from eval_pipeline.inference.backends import build_sampler, generation_params, model_price
from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
from eval_pipeline.inference.planning import GenerationPlan, JudgePlan, known_answers, plan_generations
from eval_pipeline.inference.runner import run_generations
from eval_pipeline.judging.planning import plan_judgments
from eval_pipeline.judging.setup import judge_label, judge_params, suite_judge_metrics
from eval_pipeline.metrics.aggregate import aggregate_scores
from eval_pipeline.progress import Progress
from eval_pipeline.scoring.registry import score_generations
from eval_pipeline.tasks.base import AnswersTable, Production, model_stages
from eval_pipeline.tasks.passk import with_pass_k

if TYPE_CHECKING:
    from eval_pipeline.inference.base import GenerationParams
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.suites.spec import ModelSpec, Suite


class GenerateTask(AnswersTable):
    """Generated answers, scored by the suite's scorers; the only kind a judge can rate."""

    name = "generate"
    production_stage = "generations"
    judgeable = True
    prompt_shape = "answer"
    """With a suite ``prompt``, each item's rendered prompt (few-shot examples first) and its answer text."""

    def validate(self, suite: Suite) -> None:
        """Any backend and any scorer fit (scorer names are checked with the suite's other names)."""

    def stages(self, suite: Suite) -> tuple[str, ...]:
        return model_stages(self, suite)

    def produce(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                log: Callable[[str], None]) -> Production:
        params, num_samples, system_prompt = self.request_params(suite)
        sampler = build_sampler(suite, model, samples)
        progress = Progress(f"{suite.suite}/{model.name} generation", log)
        try:
            frame, stats = run_generations(samples, model.name, sampler, params,
                                           num_samples=num_samples, system_prompt=system_prompt,
                                           cache=cache, on_progress=progress)
        finally:
            progress.close()
        return Production(frame, {
            "requests": stats.requests, "cached": stats.cached, "generated": stats.generated,
            "errors": stats.errors, "tokens_in": stats.tokens_in, "tokens_out": stats.tokens_out,
            "cost_usd": stats.cost_usd if stats.cost_usd is not None else 0.0,
            "latency_p50_s": float(frame["latency_s"].median()) if len(frame) else 0.0,
            "backend": model.backend,
        }, summary=f"generation for {model.name}: {stats.summary()}",
            preview_columns=["sample_id", "sample_index", "output", "finish_reason", "cached", "error"])

    def request_params(self, suite: Suite) -> tuple[GenerationParams, int, str | None]:
        """How each item is asked: the generation parameters, samples per item and the system prompt."""
        gen = suite.generation
        return generation_params(suite), gen.num_samples, gen.system_prompt

    def plan(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
             cache: RequestCache | None) -> GenerationPlan:
        params, num_samples, system_prompt = self.request_params(suite)
        return plan_generations(samples, model.name, build_sampler(suite, model, samples), params,
                                num_samples=num_samples, system_prompt=system_prompt, cache=cache,
                                price=model_price(model))

    def plan_judge(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                   judge_cache: RequestCache | None) -> JudgePlan:
        """What the judge would be asked about this model's answers: one request per answer × judge metric, looked
        up in ``judge_cache`` for the answers known before the run (precomputed, or in the generation cache)."""
        judge, gen = suite.judge, suite.generation
        assert judge is not None
        answers = known_answers(samples, model.name, build_sampler(suite, model, samples), generation_params(suite),
                                num_samples=gen.num_samples, system_prompt=gen.system_prompt, cache=cache)
        by_likelihood = judge.verdict == "likelihood"
        return plan_judgments(samples, answers, suite_judge_metrics(suite),
                              None if by_likelihood else build_sampler(suite, judge.model, samples),
                              judge_params(judge), judge_model=judge_label(judge), cache=judge_cache,
                              price=model_price(judge.model), answer_max_tokens=gen.max_tokens,
                              likelihood=build_likelihood_scorer(suite, judge.model) if by_likelihood else None)

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        return score_generations(samples, produced, list(suite.scorers))

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        return with_pass_k(suite, aggregate_scores(suite.suite, samples, scores, suite.breakdown_keys), scores)

    def params(self, suite: Suite) -> dict[str, object]:
        return {"task": self.name, "scorers": [s.name for s in suite.scorers]}


GENERATE = GenerateTask()
