"""``task: lm_eval``: an lm-evaluation-harness task YAML (local data) run with lm-eval's prompts and numbers. The
YAML's ``output_type`` picks how: ``multiple_choice`` as ``task: multiple_choice`` (each choice's log-likelihood
after the context and the target delimiter; acc, acc_norm), ``generate_until`` as ``task: generate`` (greedy up to
``max_gen_toks`` or an ``until`` string; its filters and exact_match), ``loglikelihood_rolling`` as ``task:
perplexity`` (word and byte perplexity, bits per byte over the corpus)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.lm_eval_tasks.answers import answer_scorers, score_answers
from eval_pipeline.lm_eval_tasks.task_samples import lm_eval_samples
from eval_pipeline.lm_eval_tasks.task_yaml import LmEvalTask, load_task_yaml
from eval_pipeline.metrics.aggregate import aggregate_scores
from eval_pipeline.metrics.corpus import CORPUS_METRICS
from eval_pipeline.tasks.base import AnswersTable, Production, model_stages
from eval_pipeline.tasks.generate import GenerateTask
from eval_pipeline.tasks.multiple_choice import MultipleChoiceTask
from eval_pipeline.tasks.perplexity import PerplexityTask

if TYPE_CHECKING:
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.inference.planning import GenerationPlan
    from eval_pipeline.suites.spec import ModelSpec, Suite


def suite_task(suite: Suite) -> LmEvalTask:
    """The suite's task YAML, read and checked (``EvalInputError`` naming the YAML and the key)."""
    if suite.lm_eval is None:
        raise ValueError("task 'lm_eval' needs an 'lm_eval' block naming the task YAML: lm_eval: {task: path.yaml}")
    path = suite.resolve_path(suite.lm_eval.task)
    return _load(str(path), path.stat().st_mtime_ns if path.is_file() else 0)


@lru_cache(maxsize=32)
def _load(path: str, mtime: int) -> LmEvalTask:
    return load_task_yaml(path)


class _Choices(MultipleChoiceTask):
    def run_options(self, suite: Suite) -> dict[str, object]:
        return {"target_delimiter": suite_task(suite).template.target_delimiter}

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        scores = super().score(suite, samples, produced)
        return scores[scores["scorer"].isin(list(suite_task(suite).metrics))].reset_index(drop=True)

    def item_metrics(self, suite: Suite) -> tuple[str, ...]:
        return tuple(suite_task(suite).metrics)


class _Texts(PerplexityTask):
    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        """The corpus metrics the YAML's ``metric_list`` names."""
        metrics = super().aggregate(suite, samples, produced, scores)
        return metrics[metrics["metric"].isin(list(suite_task(suite).metrics))].reset_index(drop=True)

    def ungateable_metrics(self, suite: Suite) -> dict[str, str]:
        return {name: reason for name, reason in super().ungateable_metrics(suite).items() if name in CORPUS_METRICS}


class _Answers(GenerateTask):
    judgeable = False

    def request_params(self, suite: Suite) -> tuple[GenerationParams, int, str | None]:
        """lm-eval's ``generation_kwargs``: greedy unless ``do_sample``, ``max_gen_toks`` new tokens, cut at the first
        ``until`` string; one answer per item, no system prompt."""
        generation = suite_task(suite).generation
        return GenerationParams(max_tokens=generation.max_gen_toks, temperature=generation.temperature,
                                seed=suite.generation.seed, stop=generation.until), 1, None

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        return score_answers(suite_task(suite), samples, produced)

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        return aggregate_scores(suite.suite, samples, scores, suite.breakdown_keys)

    def item_metrics(self, suite: Suite) -> tuple[str, ...]:
        return tuple(answer_scorers(suite_task(suite)))


OUTPUT_TYPES: dict[str, Any] = {"multiple_choice": _Choices(), "generate_until": _Answers(),
                                "loglikelihood_rolling": _Texts()}
"""An lm-eval output type → the task kind that runs it."""


class LmEvalTaskKind(AnswersTable):
    """Runs the kind of the YAML's output type over the YAML's items."""

    name = "lm_eval"
    production_stage = "generations"
    judgeable = False
    suite_keys = ("lm_eval",)

    def default_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """The task YAML as the suite's dataset (what its dataset sensor watches and its runs record)."""
        block = data.get("lm_eval")
        return {"dataset": {"uri": block["task"]}} if isinstance(block, dict) and "task" in block else {}

    def kind(self, suite: Suite) -> Any:
        return OUTPUT_TYPES[suite_task(suite).output_type]

    def validate(self, suite: Suite) -> None:
        self.kind(suite).validate(suite)

    def load_samples(self, suite: Suite, limit: int | None = None,
                     sample_ids: list[str] | None = None) -> pd.DataFrame:
        assert suite.lm_eval is not None
        return lm_eval_samples(suite_task(suite), limit, suite.lm_eval.num_fewshot, suite.lm_eval.fewshot_seed)

    def stages(self, suite: Suite) -> tuple[str, ...]:
        return model_stages(self, suite)

    def produce(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                log: Callable[[str], None]) -> Production:
        return self.kind(suite).produce(suite, model, samples, cache, log)

    def plan(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
             cache: RequestCache | None) -> GenerationPlan:
        return self.kind(suite).plan(suite, model, samples, cache)

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        return self.kind(suite).score(suite, samples, produced)

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        return self.kind(suite).aggregate(suite, samples, produced, scores)

    def item_metrics(self, suite: Suite) -> tuple[str, ...]:
        return tuple(self.kind(suite).item_metrics(suite))

    def ungateable_metrics(self, suite: Suite) -> dict[str, str]:
        return getattr(self.kind(suite), "ungateable_metrics", lambda _: {})(suite)

    def params(self, suite: Suite) -> dict[str, object]:
        task, spec = suite_task(suite), suite.lm_eval
        assert spec is not None
        return {"task": self.name, "lm_eval_task": task.name, "lm_eval_yaml": Path(task.path).name,
                "output_type": task.output_type,
                "num_fewshot": task.fewshot.num_fewshot if spec.num_fewshot is None else spec.num_fewshot,
                "fewshot_seed": spec.fewshot_seed, "scorers": list(self.item_metrics(suite))}


LM_EVAL = LmEvalTaskKind()
