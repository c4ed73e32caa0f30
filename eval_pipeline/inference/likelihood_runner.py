"""The ``generations`` stage of log-likelihood tasks: per multiple-choice item, every choice's log-likelihood after
the question (the model's pick is the most likely choice); per text, its rolling log-likelihood. Rows have the
GENERATIONS columns plus the figures that scoring needs; a failed batch is error rows naming the reason."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from eval_pipeline.data.likelihood_formats import choice_list
from eval_pipeline.data.schemas import GENERATIONS
from eval_pipeline.inference.likelihood import LikelihoodScorer, LoglikelihoodRequest

CHUNK_ITEMS = 32
"""Items scored per call: the unit of progress and of failure."""

CHOICE_COLUMNS = ("choice_logprobs", "choice_greedy", "choice_tokens")
TEXT_COLUMNS = ("logprob", "n_tokens", "n_bytes", "n_correct")


def choice_context(question: str) -> str:
    """The context each choice continues: the question, then a space (lm-eval's multiple-choice framing)."""
    return f"{question} "


def run_choice_likelihoods(samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
                           on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per item: ``output`` is the most likely choice; the per-choice figures are JSON lists."""
    rows: list[dict[str, Any]] = []
    total = len(samples)
    for start in range(0, total, CHUNK_ITEMS):
        chunk = samples.iloc[start:start + CHUNK_ITEMS]
        requests = [LoglikelihoodRequest(choice_context(question), choice)
                    for question, choices in zip(chunk["input"], chunk["choices"], strict=True)
                    for choice in choice_list(choices)]
        try:
            scores = iter(scorer.loglikelihood(requests))
            error = None
        except Exception as exc:  # the chunk's items become error rows; the others go on
            scores, error = iter(()), f"{scorer.backend}: {type(exc).__name__}: {exc}"
        for item in chunk.itertuples(index=False):
            choices = choice_list(item.choices)
            if error is not None:
                rows.append(_row(item, model, error=error))
                continue
            scored = [next(scores) for _ in choices]
            logprobs = [s.logprob for s in scored]
            best = max(range(len(choices)), key=lambda i: (logprobs[i], -i))
            rows.append(_row(item, model, output=choices[best], choice_logprobs=json.dumps(logprobs),
                             choice_greedy=json.dumps([s.is_greedy for s in scored]),
                             choice_tokens=json.dumps([s.n_tokens for s in scored])))
        if on_progress:
            on_progress(min(start + CHUNK_ITEMS, total), total)
    return pd.DataFrame(rows, columns=[*GENERATIONS.names, *CHOICE_COLUMNS])


def run_text_likelihoods(samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
                         on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per text with its summed log-likelihood, tokens scored, UTF-8 bytes and argmax hits."""
    rows: list[dict[str, Any]] = []
    total = len(samples)
    for start in range(0, total, CHUNK_ITEMS):
        chunk = samples.iloc[start:start + CHUNK_ITEMS]
        try:
            scores: Sequence[Any] = scorer.rolling_loglikelihood(list(chunk["input"]))
            error = None
        except Exception as exc:
            scores, error = [], f"{scorer.backend}: {type(exc).__name__}: {exc}"
        for position, item in enumerate(chunk.itertuples(index=False)):
            if error is not None:
                rows.append(_row(item, model, error=error))
                continue
            score = scores[position]
            rows.append(_row(item, model, output="", tokens_in=score.n_tokens, logprob=score.logprob,
                             n_tokens=score.n_tokens, n_bytes=score.n_bytes, n_correct=score.n_correct))
        if on_progress:
            on_progress(min(start + CHUNK_ITEMS, total), total)
    return pd.DataFrame(rows, columns=[*GENERATIONS.names, *TEXT_COLUMNS])


def _row(item: Any, model: str, *, error: str | None = None, **values: Any) -> dict[str, Any]:
    return {"sample_id": item.sample_id, "model": model, "sample_index": 0, "row_hash": item.row_hash,
            "cached": False, "finish_reason": "error" if error else "loglikelihood", "error": error,
            "output": None, **values}
