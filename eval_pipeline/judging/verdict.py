"""Reading the judge's rating out of its free-text reply."""

from __future__ import annotations

import re
from dataclasses import dataclass

from eval_pipeline.judging.metric import JudgeMetric, RatingLevel, normalize_label

VERDICT_KEYWORDS: tuple[str, ...] = ("verdict", "rating", "score", "answer")
LABEL_PREFIX = r"[ \t>#*_`\-]*(?:\d+[.)][ \t]*)?(?:final[ \t]+)?"
"""What may precede a verdict label at the start of a line: markdown, a list number, "final"."""
LABEL_END = r"[ \t*_`]*[:：]"
"""What ends a verdict label: optional markdown, then a colon."""
VERDICT_LINE_RE = re.compile(
    rf"^{LABEL_PREFIX}(?:{'|'.join(VERDICT_KEYWORDS)}){LABEL_END}[ \t*_`]*(?P<value>[^\n]*?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE)
"""A line such as ``Verdict: Good``, ``**Verdict:** Good``, ``> Rating: 3``, ``2. Final answer: B``."""

_LEAD_CHARS = " \t*_`'\"“”‘’«»[({<"
_TRAIL_CHARS = " \t*_`'\"“”‘’«»])}>.,;:!?"
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


class VerdictParseError(ValueError):
    """The judge's reply holds no rating that can be matched to the metric's scale."""


@dataclass(frozen=True)
class Verdict:
    """The level the judge chose, its normalized score, and the judge's explanation."""

    level: RatingLevel
    score: float
    explanation: str


def clean_value(raw: str) -> str:
    """A verdict line's value with markdown emphasis, quotes, brackets and trailing punctuation removed."""
    return raw.strip().lstrip(_LEAD_CHARS).rstrip(_TRAIL_CHARS).strip()


def verdict_lines(reply: str) -> list[re.Match[str]]:
    """Every verdict-like line of ``reply``, last first."""
    return list(VERDICT_LINE_RE.finditer(reply))[::-1]


def match_level(metric: JudgeMetric, raw: str) -> RatingLevel | None:
    """The level ``raw`` names: exact (normalized), then a unique prefix, then (float scales) a level's value."""
    value = normalize_label(clean_value(raw))
    if not value:
        return None
    keyed = [(normalize_label(level.definition), level) for level in metric.rating_scale]
    for key, level in keyed:
        if key == value:
            return level
    # The value starts with a definition ("Good, because ..."): the longest such definition.
    leading = [(key, level) for key, level in keyed if value.startswith(key + " ")]
    if leading:
        longest = max(len(key) for key, _ in leading)
        best = [level for key, level in leading if len(key) == longest]
        if len(best) == 1:
            return best[0]
    # The value abbreviates exactly one definition ("Partially" for "Partially correct").
    abbreviated = [level for key, level in keyed if key.startswith(value)]
    if len(abbreviated) == 1:
        return abbreviated[0]
    if metric.float_scale:
        number = _NUMBER_RE.match(clean_value(raw))
        if number:
            try:
                target = float(number.group(0))
            except ValueError:
                return None
            hits = [level for level in metric.rating_scale if float(level.value) == target]
            if len(hits) == 1:
                return hits[0]
    return None


def _phrase_pattern(definition: str) -> re.Pattern[str]:
    words = normalize_label(definition).split()
    return re.compile(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words)) + r"(?![^\W_])", re.IGNORECASE)


def _last_mention(metric: JudgeMetric, reply: str) -> RatingLevel | None:
    """The level whose definition occurs last in ``reply`` as a whole phrase, longer definitions claiming first."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, RatingLevel]] = []
    by_length = sorted(metric.rating_scale, key=lambda lvl: len(normalize_label(lvl.definition)), reverse=True)
    for level in by_length:
        for match in _phrase_pattern(level.definition).finditer(reply):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append((start, level))
    return max(found, key=lambda hit: hit[0])[1] if found else None


def parse_verdict(metric: JudgeMetric, reply: str) -> Verdict:
    """The judge's rating: the last verdict line that names a level, else the last level mentioned anywhere."""
    text = reply or ""
    for line in verdict_lines(text):
        level = match_level(metric, line.group("value"))
        if level is not None:
            start, end = line.span()
            explanation = (text[:start] + text[end:]).strip()
            return Verdict(level, metric.score(level), explanation)
    level = _last_mention(metric, text)
    if level is None:
        start = " ".join(text.split())[:120]
        raise VerdictParseError(f"no rating of {metric.name} ({' / '.join(metric.definitions)}) found in the "
                                f"judge's reply: {start!r}")
    return Verdict(level, metric.score(level), text.strip())
