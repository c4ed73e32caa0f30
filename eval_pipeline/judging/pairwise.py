"""Pairwise judging: which of two answers is better, asked in both orders to cancel position bias."""

from __future__ import annotations

import re
from typing import Literal

from eval_pipeline.judging.metric import normalize_label
from eval_pipeline.judging.prompt import answer_format, data_rules, delimited_block, has_reference, make_nonce
from eval_pipeline.judging.verdict import NEGATION_RE, VerdictParseError, clean_value, decisive_line
from eval_pipeline.metrics.pairwise_summary import PairwiseOutcome

Preference = Literal["A", "B", "tie"]
_TIE_WORDS = frozenset({"tie", "tied", "draw", "equal", "equally"})
_LABEL_WORDS = frozenset({"answer", "response", "assistant", "output", "option"})
_AGAINST_WORDS = frozenset({"worse", "less", "inferior", "weaker", "lower", "loses", "lost", "fails", "wrong"})
"""Words after an option that may turn it around ("A is worse", "A loses"): such a value is no verdict for it."""
_NEITHER_NOR_RE = re.compile(r"(?<![^\W_])(?:neither|nor)(?![^\W_])", re.IGNORECASE)
""""Neither is better" states a tie, so these two do not count as negations here."""


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
    """The option a verdict value names: ``A``, ``Answer B``, ``A (clearer)``, ``tie``, ``It's a tie``, ``both are
    equally good``; None for anything negated (``not A``), hedged (``A or B``, ``A, equally clear``) or unknown."""
    text = clean_value(raw)
    words = normalize_label(text).split()
    if not words or NEGATION_RE.search(_NEITHER_NOR_RE.sub(" ", text)):
        return None
    if len(words) > 1 and words[0] in ("a", "the") and words[1] in ("tie", "draw"):
        words = words[1:]  # "a tie"
    if words[0] in _LABEL_WORDS and len(words) > 1 and words[1] in ("a", "b"):
        words = words[1:]
    if words[0] in ("a", "b"):
        rest = set(words[1:])
        if rest & (_TIE_WORDS | _AGAINST_WORDS | {"a", "b", "both", "neither"}):
            return None
        return "A" if words[0] == "a" else "B"
    if _TIE_WORDS & set(words) or words[0] in ("both", "neither"):
        return "tie"
    return None


def parse_preference(reply: str) -> Preference:
    """The option named by the reply's decisive verdict line (its last ``Verdict:`` line, else its last
    Rating/Score/Answer line; markdown allowed); VerdictParseError when there is none or it names no single option.
    An earlier verdict line is never used instead."""
    text = reply or ""
    line = decisive_line(text)
    preference = None if line is None else _preference(line.value)
    if preference is None:
        found = "no verdict line" if line is None else f"the last {line.label!r} line ({clean_value(line.value)!r})"
        raise VerdictParseError(f"{found} does not say 'Verdict: A', 'Verdict: B' or 'Verdict: tie'; reply: "
                                f"{' '.join(text.split())[:120]!r}")
    return preference


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


