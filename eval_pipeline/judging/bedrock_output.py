"""Judged results in the shape of a Bedrock model-evaluation job's output JSONL, for tools that read that shape:
one line per prompt with ``automatedEvaluationResult.scores``, the ``inputRecord`` and the ``modelResponses``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from eval_pipeline.judging.builtin import BUILTIN_METRIC_NAMES

BUILTIN_PREFIX = "Builtin."


def bedrock_metric_name(metric: str) -> str:
    """Built-in metrics carry Bedrock's ``Builtin.`` prefix; custom metrics keep their name."""
    return f"{BUILTIN_PREFIX}{metric}" if metric in BUILTIN_METRIC_NAMES else metric


def bedrock_output_records(samples: pd.DataFrame, generations: pd.DataFrame, judgments: pd.DataFrame,
                           *, model_identifier: str) -> Iterator[dict[str, object]]:
    """One record per item (its first sample); a judgment that failed has ``result: null`` and its error."""
    items = samples.set_index("sample_id")
    first = generations.sort_values("sample_index", kind="stable").drop_duplicates("sample_id")
    judged = judgments[judgments["sample_index"] == 0].groupby("sample_id", sort=False)
    by_item = {sample_id: frame for sample_id, frame in judged}
    for generation in first.itertuples(index=False):
        item = items.loc[generation.sample_id]
        scores = []
        for row in by_item.get(generation.sample_id, pd.DataFrame()).itertuples(index=False):
            explanation = row.explanation if pd.notna(row.explanation) else ""
            detail = {"modelIdentifier": row.judge_model, "explanation": explanation}
            if pd.notna(row.error):
                detail["error"] = row.error
            score = None if pd.isna(row.score) else float(row.score)
            scores.append({"metricName": bedrock_metric_name(row.metric), "result": score,
                           "evaluatorDetails": [detail]})
        record = {"prompt": item["input"]}
        if isinstance(item["reference"], str):
            record["referenceResponse"] = item["reference"]
        if isinstance(item["category"], str):
            record["category"] = item["category"]
        yield {"automatedEvaluationResult": {"scores": scores}, "inputRecord": record,
               "modelResponses": [{"response": generation.output if pd.notna(generation.output) else "",
                                   "modelIdentifier": model_identifier}]}


def write_bedrock_output(path: str | Path, samples: pd.DataFrame, generations: pd.DataFrame,
                         judgments: pd.DataFrame, *, model_identifier: str) -> str:
    """Write the records to ``path`` (a local ``.jsonl`` path or an ``s3://`` key); returns it."""
    from upath import UPath

    target = UPath(str(path))
    if target.protocol in ("", "file"):
        Path(str(target)).parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as handle:
        for record in bedrock_output_records(samples, generations, judgments, model_identifier=model_identifier):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return str(target)
