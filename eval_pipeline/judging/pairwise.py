"""Pairwise judging: which of two answers is better, asked in both orders to cancel position bias."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from eval_pipeline.judging.metric import normalize_label
from eval_pipeline.judging.prompt import answer_format, data_rules, delimited_block, has_reference, make_nonce
from eval_pipeline.judging.verdict import VerdictParseError, clean_value, verdict_lines

Preference = Literal["A", "B", "tie"]
Winner = Literal["model", "baseline", "tie"]
_TIE_WORDS = frozenset({"tie", "tied", "draw", "equal", "equally"})
_LABEL_WORDS = frozenset({"answer", "response", "assistant", "output", "option"})


@dataclass(frozen=True)
class PairwiseOutcome:
    """One item's result from both orders; ``consistent`` when both orders gave the same underlying verdict."""

    winner: Winner
    consistent: bool


@dataclass(frozen=True)
class PairwiseSummary:
    """Counts and rates (over ``n``) of the model's wins, losses and ties against the baseline."""

    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    loss_rate: float
    tie_rate: float
    consistency_rate: float


def pairwise_messages(*, prompt: str, answer_a: str, answer_b: str,
                      ground_truth: str | None) -> tuple[dict[str, str], ...]:
    """The (system, user) messages asking which answer, A or B, better responds to ``prompt``."""
    reference = ground_truth if has_reference(ground_truth) else None
    nonce = make_nonce("pairwise", prompt, answer_a, answer_b, reference)
    system = "\n\n".join([
        "You are an impartial evaluator. You compare two answers, A and B, to the same request and decide which "
        "one is better, or that they are equally good.",
        data_rules(nonce),
        "Prefer the answer that better does what the request asks: more correct, more complete, more relevant "
        "and more useful. If a reference answer is given, treat it as the standard of correctness. Do not let "
        "the order in which the answers appear, their length, or their labels influence you. Say tie only when "
        "neither answer is better.",
        answer_format(("A", "B", "tie")),
    ])
    parts = [f"The request:\n{delimited_block('prompt', prompt, nonce)}"]
    if reference is not None:
        parts.append(f"A reference answer, known to be correct:\n{delimited_block('ground_truth', reference, nonce)}")
    parts += [f"Answer A:\n{delimited_block('answer_a', answer_a, nonce)}",
              f"Answer B:\n{delimited_block('answer_b', answer_b, nonce)}",
              "Which answer is better? End your reply with the line 'Verdict: A', 'Verdict: B' or 'Verdict: tie'."]
    return ({"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)})


def _preference(raw: str) -> Preference | None:
    words = normalize_label(clean_value(raw)).split()
    if not words:
        return None
    if _TIE_WORDS & set(words[:4]) or words[0] in ("both", "neither"):
        return "tie"
    if words[0] in _LABEL_WORDS and len(words) > 1:
        words = words[1:]
    if words[0] == "a":
        return "A"
    if words[0] == "b":
        return "B"
    return None


def parse_preference(reply: str) -> Preference:
    """The last ``Verdict: A|B|tie`` line (also Rating/Score/Answer, markdown allowed); VerdictParseError if none."""
    for line in verdict_lines(reply or ""):
        preference = _preference(line.group("value"))
        if preference is not None:
            return preference
    start = " ".join((reply or "").split())[:120]
    raise VerdictParseError(f"no 'Verdict: A', 'Verdict: B' or 'Verdict: tie' line in the judge's reply: {start!r}")


def combine_orders(model_first: Preference, baseline_first: Preference) -> PairwiseOutcome:
    """Combine the verdict with the model's answer as A (``model_first``) and as B (``baseline_first``).

    The same underlying answer preferred in both orders wins; tie/tie is a consistent tie; anything else
    (position-following verdicts such as A/A, or one tie and one preference) is an inconsistent tie.
    """
    first = {"A": "model", "B": "baseline", "tie": "tie"}[model_first]
    second = {"A": "baseline", "B": "model", "tie": "tie"}[baseline_first]
    if first == second:
        return PairwiseOutcome(first, True)  # type: ignore[arg-type]
    return PairwiseOutcome("tie", False)


def summarize_pairwise(outcomes: Sequence[PairwiseOutcome]) -> PairwiseSummary:
    """Win/loss/tie counts and rates of the model against the baseline; NaN rates when there are no outcomes."""
    n = len(outcomes)
    wins = sum(outcome.winner == "model" for outcome in outcomes)
    losses = sum(outcome.winner == "baseline" for outcome in outcomes)
    ties = n - wins - losses
    consistent = sum(outcome.consistent for outcome in outcomes)

    def rate(count: int) -> float:
        return count / n if n else math.nan

    return PairwiseSummary(n, wins, losses, ties, rate(wins), rate(losses), rate(ties), rate(consistent))
