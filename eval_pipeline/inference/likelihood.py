"""Log-likelihood scoring: the request and result types and the scorer protocol (lm-evaluation-harness semantics).

``loglikelihood`` scores a continuation given a context (multiple choice: one request per choice);
``rolling_loglikelihood`` scores a whole text (perplexity, bits per byte). Log-probabilities are natural logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``continuation`` given ``context`` (trailing whitespace of the context moves to the continuation)."""

    context: str
    continuation: str


@dataclass(frozen=True)
class ContinuationScore:
    """log p(continuation | context) summed over the continuation's tokens."""

    logprob: float
    is_greedy: bool
    """Every continuation token is the model's argmax (lm-eval's ``is_greedy``)."""
    n_tokens: int


@dataclass(frozen=True)
class TextScore:
    """The rolling log-likelihood of a whole text.

    ``n_tokens`` counts the scored tokens: every token of the text, the first one conditioned on the prefix token
    (BOS, or EOS when the tokenizer has no BOS, as lm-eval does; remote servers: the BOS the server adds, or the
    model's ``likelihood_prefix``). A local model with ``add_bos_token`` True also scores the text's own BOS, as
    lm-eval 0.4.13 does by default.
    """

    logprob: float
    n_tokens: int
    n_bytes: int
    """UTF-8 bytes of the text."""
    n_correct: int
    """Scored tokens whose argmax prediction is the actual token (next-token accuracy numerator)."""


class LikelihoodError(RuntimeError):
    """Scoring could not be done (a server without prompt log-probabilities, failed requests): no numbers made up."""


class LikelihoodScorer(Protocol):
    """Scores requests and texts, results in input order; ``on_progress`` gets the number just finished."""

    backend: str

    def identity(self) -> dict[str, Any]:
        """Everything about the scorer that changes its numbers (part of a cache key)."""
        ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      on_progress: Callable[[int], None] | None = None) -> list[ContinuationScore]:
        ...

    def rolling_loglikelihood(self, texts: Sequence[str],
                              on_progress: Callable[[int], None] | None = None) -> list[TextScore]:
        ...


def split_boundary(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the continuation, as lm-eval does (``"Q: x " + "A"`` →
    ``"Q: x" + " A"``): tokenizers attach a leading space to the next word."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def choice_picks(scores: Sequence[ContinuationScore], choices: Sequence[str]) -> dict[str, int]:
    """The index each rule picks: ``acc`` the most likely choice, ``acc_norm`` the most likely per character of the
    choice string (lm-eval divides by ``len(choice)``, the choice without the target delimiter). Ties go first."""
    if not scores or len(scores) != len(choices):
        raise ValueError(f"multiple_choice needs one score per choice, got {len(scores)} scores for "
                         f"{len(choices)} choices")
    if any(not choice for choice in choices):
        raise ValueError("acc_norm divides by the choice's length: a choice is the empty string")
    plain = [score.logprob for score in scores]
    normalized = [score.logprob / len(choice) for score, choice in zip(scores, choices, strict=True)]
    return {"acc": _first_argmax(plain), "acc_norm": _first_argmax(normalized)}


def _first_argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda index: values[index])


__all__ = ["ContinuationScore", "LikelihoodError", "LikelihoodScorer", "LoglikelihoodRequest", "TextScore",
           "choice_picks", "split_boundary"]
