"""lm-evaluation-harness's log-likelihood metrics: acc and acc_norm for multiple choice, and corpus perplexity,
bits per byte, byte perplexity and word perplexity for rolling log-likelihoods (sums over the corpus, not means of
per-text ratios).

A count of zero gives NaN (nothing was scored); a perplexity too large for a float gives inf.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from eval_pipeline.inference.likelihood import ContinuationScore, TextScore, choice_picks


def multiple_choice(scores: Sequence[ContinuationScore], choices: Sequence[str], answer: int) -> dict[str, float]:
    """``acc`` and ``acc_norm`` (see ``choice_picks``): 1.0 where the rule picks the answer."""
    if not 0 <= answer < len(choices):
        raise ValueError(f"answer {answer} is not the index of one of the {len(choices)} choices")
    return {rule: float(pick == answer) for rule, pick in choice_picks(scores, choices).items()}


def token_perplexity(logprob: float, n_tokens: int) -> float:
    """exp(−logprob / n_tokens)."""
    return _exp(-logprob / n_tokens) if n_tokens > 0 else math.nan


def bits_per_byte(logprob: float, n_bytes: int) -> float:
    """−logprob / (n_bytes · ln 2)."""
    return -logprob / (n_bytes * math.log(2)) if n_bytes > 0 else math.nan


def byte_perplexity(logprob: float, n_bytes: int) -> float:
    """exp(−logprob / n_bytes)."""
    return _exp(-logprob / n_bytes) if n_bytes > 0 else math.nan


def word_perplexity(logprob: float, n_words: int) -> float:
    """exp(−logprob / n_words)."""
    return _exp(-logprob / n_words) if n_words > 0 else math.nan


_WHITESPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    r"""lm-eval's word count for ``word_perplexity``: the pieces of ``re.split(r"\s+", text)``, so leading or
    trailing whitespace adds an empty piece (``"a b\n"`` is 3 words) and the empty text is 1."""
    return len(_WHITESPACE.split(text))


def corpus_perplexity(scores: Sequence[TextScore], words: Sequence[int] | None = None) -> dict[str, float]:
    """token_perplexity, bits_per_byte and byte_perplexity of the summed log-likelihood over the summed tokens
    or bytes (lm-eval's weighted_mean), and next_token_accuracy = Σ correct / Σ tokens; with ``words`` (each
    text's ``count_words``), word_perplexity = exp(−Σ logprob / Σ words) too."""
    logprob = math.fsum(score.logprob for score in scores)
    n_tokens = sum(score.n_tokens for score in scores)
    n_bytes = sum(score.n_bytes for score in scores)
    n_correct = sum(score.n_correct for score in scores)
    corpus = {
        "token_perplexity": token_perplexity(logprob, n_tokens),
        "bits_per_byte": bits_per_byte(logprob, n_bytes),
        "byte_perplexity": byte_perplexity(logprob, n_bytes),
        "next_token_accuracy": n_correct / n_tokens if n_tokens > 0 else math.nan,
    }
    if words is not None:
        if len(words) != len(scores):
            raise ValueError(f"{len(words)} word counts for {len(scores)} texts")
        corpus["word_perplexity"] = word_perplexity(logprob, sum(words))
    return corpus


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


__all__ = ["bits_per_byte", "byte_perplexity", "corpus_perplexity", "count_words", "multiple_choice",
           "token_perplexity", "word_perplexity"]
