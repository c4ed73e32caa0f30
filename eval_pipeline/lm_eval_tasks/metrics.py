"""lm-eval's per-item metrics for generated answers, by name, with the options a ``metric_list`` entry may give."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

from eval_pipeline.registry import Registry

AnswerMetric = Callable[..., float]
"""(prediction, references, **options) → the item's score."""

ANSWER_METRICS: Registry[AnswerMetric] = Registry("lm-eval answer metric")
METRIC_OPTIONS: dict[str, frozenset[str]] = {}


def exact_match(prediction: str, references: Sequence[str], *, regexes_to_ignore: Sequence[str] | None = None,
                ignore_case: bool = False, ignore_punctuation: bool = False, ignore_numbers: bool = False) -> float:
    """1.0 when the prediction equals any reference after the same normalization on both (lm-eval's
    ``exact_match``: regexes removed, then lower case, punctuation and digits removed as asked)."""
    def normal(text: str) -> str:
        for pattern in regexes_to_ignore or ():
            text = re.sub(pattern, "", text)
        if ignore_case:
            text = text.lower()
        if ignore_punctuation:
            text = text.translate(str.maketrans("", "", string.punctuation))
        if ignore_numbers:
            text = text.translate(str.maketrans("", "", string.digits))
        return text

    return float(any(normal(prediction) == normal(reference) for reference in references))


ANSWER_METRICS.register("exact_match", exact_match)
METRIC_OPTIONS["exact_match"] = frozenset({"regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers"})
