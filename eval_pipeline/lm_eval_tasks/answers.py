"""Scores of generated answers as an lm-eval task computes them: each ``filter_list`` pipeline extracts the answer,
each metric of ``metric_list`` scores it against the item's golds. The scorer is named ``<metric>`` for the
unnamed default filter (lm-eval's ``<metric>,none``) and ``<metric>.<filter>`` otherwise (``exact_match,strict``
is ``exact_match.strict``: MLflow metric names take no commas)."""

from __future__ import annotations

import json

import pandas as pd

from eval_pipeline.data.schemas import SCORES
from eval_pipeline.lm_eval_tasks.filters import NO_FILTER, FilterPipeline
from eval_pipeline.lm_eval_tasks.metrics import ANSWER_METRICS
from eval_pipeline.lm_eval_tasks.samples import GOLDS_FIELD
from eval_pipeline.lm_eval_tasks.task_yaml import LmEvalTask


def scorer_name(metric: str, pipeline: FilterPipeline) -> str:
    return metric if pipeline.name == NO_FILTER.name else f"{metric}.{pipeline.name}"


def answer_scorers(task: LmEvalTask) -> list[str]:
    """Every scorer the task's answers get, filters outer, metrics inner."""
    return [scorer_name(metric, pipeline) for pipeline in task.filters for metric in task.metrics]


def score_answers(task: LmEvalTask, samples: pd.DataFrame, generations: pd.DataFrame) -> pd.DataFrame:
    """One row per generation × filter × metric; ``extracted`` is the filtered answer; a failed generation gives
    error rows."""
    golds = {row.sample_id: json.loads(row.metadata).get(GOLDS_FIELD) or [row.reference]
             for row in samples.itertuples(index=False)}
    rows = []
    for generation in generations.itertuples(index=False):
        base = {"sample_id": generation.sample_id, "model": generation.model,
                "sample_index": generation.sample_index, "request_hash": generation.request_hash}
        failed = generation.error is not None and not pd.isna(generation.error)
        for pipeline in task.filters:
            answer = None if failed else pipeline([generation.output or ""])
            for metric, options in task.metrics.items():
                name = scorer_name(metric, pipeline)
                if failed:
                    rows.append({**base, "scorer": name, "error": f"generation failed: {generation.error}"})
                    continue
                value = ANSWER_METRICS.get(metric)(str(answer), [str(g) for g in golds[generation.sample_id]],
                                                   **options)
                rows.append({**base, "scorer": name, "score": value, "extracted": str(answer)})
    return pd.DataFrame(rows, columns=SCORES.names)
