"""The ``scores`` stage of log-likelihood tasks: ``acc`` and ``acc_norm`` per multiple-choice item (as
lm-evaluation-harness defines them), and each text's log-likelihood figures for corpus metrics."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from eval_pipeline.data.likelihood_formats import choice_list
from eval_pipeline.data.schemas import SCORES
from eval_pipeline.inference.likelihood import ContinuationScore, choice_picks
from eval_pipeline.inference.likelihood_runner import TEXT_COLUMNS
from eval_pipeline.metrics.likelihood import token_perplexity

CHOICE_METRICS = ("acc", "acc_norm")
TEXT_SCORER = "token_perplexity"


def score_choices(samples: pd.DataFrame, generations: pd.DataFrame) -> pd.DataFrame:
    """Rows for ``acc`` and ``acc_norm`` per item; ``extracted`` is the index each picks."""
    items = samples.set_index("sample_id")
    rows = []
    for generation in generations.itertuples(index=False):
        base = {"sample_id": generation.sample_id, "model": generation.model, "sample_index": 0,
                "request_hash": None}
        if pd.notna(generation.error):
            rows += [{**base, "scorer": m, "error": f"scoring failed: {generation.error}"} for m in CHOICE_METRICS]
            continue
        item = items.loc[generation.sample_id]
        choices = choice_list(item["choices"])
        scores = [ContinuationScore(logprob, greedy, tokens) for logprob, greedy, tokens in zip(
            json.loads(generation.choice_logprobs), json.loads(generation.choice_greedy),
            json.loads(generation.choice_tokens), strict=True)]
        picks, answer = choice_picks(scores, choices), int(item["reference"])
        rows += [{**base, "scorer": m, "score": float(picks[m] == answer), "extracted": str(picks[m])}
                 for m in CHOICE_METRICS]
    return pd.DataFrame(rows, columns=SCORES.names)


def score_texts(generations: pd.DataFrame) -> pd.DataFrame:
    """One ``token_perplexity`` row per text (its own perplexity), carrying the sums that corpus metrics use."""
    rows: list[dict[str, Any]] = []
    for generation in generations.itertuples(index=False):
        row = {"sample_id": generation.sample_id, "model": generation.model, "sample_index": 0,
               "scorer": TEXT_SCORER, "request_hash": None}
        if pd.notna(generation.error):
            rows.append({**row, "error": f"scoring failed: {generation.error}"})
            continue
        sums = {column: getattr(generation, column) for column in TEXT_COLUMNS}
        rows.append({**row, **sums, "score": token_perplexity(sums["logprob"], int(sums["n_tokens"]))})
    return pd.DataFrame(rows, columns=[*SCORES.names, *TEXT_COLUMNS])

