"""The ``generations`` stage of log-likelihood tasks: per multiple-choice item, every choice's log-likelihood after
the question (the model's pick is the most likely choice); per text, its rolling log-likelihood. Rows have the
GENERATIONS columns plus the figures that scoring needs; a failed batch is error rows naming the reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from eval_pipeline.data.likelihood_formats import choice_list
from eval_pipeline.data.schemas import GENERATIONS
from eval_pipeline.inference.likelihood import LikelihoodScorer, LoglikelihoodRequest, choice_picks
from eval_pipeline.progress import by_parts

CHUNK_ITEMS = 32
"""Items scored per call: the unit of progress and of failure."""

Parts = Callable[[list[int]], tuple[Callable[[int], None], ...]]
"""Given each item's number of scoring requests, the progress argument to pass the scorer (none or one)."""

CHOICE_COLUMNS = ("choice_logprobs", "choice_greedy", "choice_tokens")
TEXT_COLUMNS = ("logprob", "n_tokens", "n_bytes", "n_correct")


def choice_context(question: str) -> str:
    """The context each choice continues: the question, then a space (lm-eval's multiple-choice framing)."""
    return f"{question} "


def choice_request(question: str, choice: str, target_delimiter: str = " ") -> LoglikelihoodRequest:
    """The request scoring one choice: lm-eval's ``(context, target_delimiter + choice)``. The default space is
    written as ``(question + " ", choice)``, the same tokens (the context's trailing whitespace moves to the
    continuation), so the request keys of existing suites do not change."""
    if target_delimiter == " ":
        return LoglikelihoodRequest(choice_context(question), choice)
    return LoglikelihoodRequest(question, target_delimiter + choice)


def run_choice_likelihoods(samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
                           on_progress: Callable[[int, int], None] | None = None, *,
                           target_delimiter: str = " ") -> pd.DataFrame:
    """One row per item: ``output`` is the most likely choice; the per-choice figures are JSON lists."""
    def score(chunk: pd.DataFrame, report: Parts) -> list[dict[str, Any]]:
        requests = [choice_request(question, choice, target_delimiter)
                    for question, choices in zip(chunk["input"], chunk["choices"], strict=True)
                    for choice in choice_list(choices)]
        scores = iter(scorer.loglikelihood(requests, *report([len(choice_list(c)) for c in chunk["choices"]])))
        hits = iter(_hits(scorer, len(requests)))
        values = []
        for choices in map(choice_list, chunk["choices"]):
            scored = [next(scores) for _ in choices]
            values.append({"output": choices[choice_picks(scored, choices)["acc"]],
                           "cached": all([next(hits) for _ in choices]),
                           "choice_logprobs": json.dumps([s.logprob for s in scored]),
                           "choice_greedy": json.dumps([s.is_greedy for s in scored]),
                           "choice_tokens": json.dumps([s.n_tokens for s in scored])})
        return values

    return _in_chunks(samples, model, scorer, score, [*GENERATIONS.names, *CHOICE_COLUMNS], on_progress)


def run_text_likelihoods(samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
                         on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per text with its summed log-likelihood, tokens scored, UTF-8 bytes and argmax hits."""
    def score(chunk: pd.DataFrame, report: Parts) -> list[dict[str, Any]]:
        scores = scorer.rolling_loglikelihood(list(chunk["input"]), *report([1] * len(chunk)))
        return [{"output": "", "tokens_in": s.n_tokens, "logprob": s.logprob, "n_tokens": s.n_tokens,
                 "n_bytes": s.n_bytes, "n_correct": s.n_correct, "cached": hit}
                for s, hit in zip(scores, _hits(scorer, len(scores)), strict=True)]

    return _in_chunks(samples, model, scorer, score, [*GENERATIONS.names, *TEXT_COLUMNS], on_progress)


def _hits(scorer: LikelihoodScorer, count: int) -> list[bool]:
    """Per request of the scorer's last call, whether it came from the cache (a ``CachedLikelihoodScorer``)."""
    hits = list(getattr(scorer, "last_hits", None) or [])
    return hits if len(hits) == count else [False] * count


def _in_chunks(samples: pd.DataFrame, model: str, scorer: LikelihoodScorer,
               score: Callable[[pd.DataFrame, Parts], list[dict[str, Any]]], columns: list[str],
               on_progress: Callable[[int, int], None] | None) -> pd.DataFrame:
    """``score`` over ``CHUNK_ITEMS`` items at a time; a chunk that fails becomes error rows, the others go on.
    Progress moves as the scorer finishes each item's requests (``report``: the scorer's progress argument)."""
    rows: list[dict[str, Any]] = []
    total = len(samples)
    if on_progress and total:
        on_progress(0, total)
    for start in range(0, total, CHUNK_ITEMS):
        chunk = samples.iloc[start:start + CHUNK_ITEMS]
        items = list(chunk.itertuples(index=False))

        def report(sizes: list[int], start: int = start) -> tuple[Callable[[int], None], ...]:
            return () if on_progress is None else (by_parts(on_progress, sizes, start=start, total=total),)

        try:
            scored = [_row(item, model, **values) for item, values in zip(items, score(chunk, report), strict=True)]
        except Exception as exc:
            error = f"{scorer.backend}: {type(exc).__name__}: {exc}"
            scored = [_row(item, model, error=error) for item in items]
        rows += scored
        from_cache = getattr(on_progress, "from_cache", None)
        if from_cache is not None:  # cached items are left out of the rate
            from_cache(sum(1 for row in scored if row["cached"]))
        if on_progress:
            on_progress(min(start + CHUNK_ITEMS, total), total)
    return pd.DataFrame(rows, columns=columns)


def _row(item: Any, model: str, *, error: str | None = None, **values: Any) -> dict[str, Any]:
    return {"sample_id": item.sample_id, "model": model, "sample_index": 0, "row_hash": item.row_hash,
            "cached": False, "finish_reason": "error" if error else "loglikelihood", "error": error,
            "output": None, **values}
