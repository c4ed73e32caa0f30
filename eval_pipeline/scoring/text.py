"""Text-matching scorers: normalized exact match, token F1, ROUGE-L, contains, regex extraction."""

from __future__ import annotations

import math
import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def normalize(text: str) -> str:
    """SQuAD-style normalization: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall over normalized tokens (SQuAD's F1)."""
    predicted, expected = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure: longest common token subsequence, tokens lower-cased alphanumeric runs."""
    predicted, expected = _ROUGE_TOKEN.findall(prediction.lower()), _ROUGE_TOKEN.findall(reference.lower())
    if not predicted or not expected:
        return 0.0
    lcs = _lcs_length(predicted, expected)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(expected)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, reference: str) -> float:
    """1 when the normalized reference appears in the normalized prediction, on word boundaries."""
    expected = normalize(reference)
    return float(bool(expected) and f" {expected} " in f" {normalize(prediction)} ")


def regex_extract(prediction: str, pattern: str, ignore_case: bool = True) -> str | None:
    """The last match of the pattern (its first group when it has one); None when nothing matches."""
    matches = list(re.finditer(pattern, prediction, re.IGNORECASE if ignore_case else 0))
    if not matches:
        return None
    last = matches[-1]
    return last.group(1) if last.re.groups else last.group(0)


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def parse_number(text: str) -> float | None:
    """The last number in ``text`` (thousands separators allowed), or None."""
    matches = _NUMBER.findall(text)
    return float(matches[-1].replace(",", "")) if matches else None


def numeric_match(prediction: str, reference: str, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> float:
    """1.0 when the last number of the prediction equals the reference's last number (within tolerance)."""
    got, expected = parse_number(prediction), parse_number(reference)
    if got is None or expected is None:
        return 0.0
    return float(math.isclose(got, expected, rel_tol=rel_tol, abs_tol=abs_tol))


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]
