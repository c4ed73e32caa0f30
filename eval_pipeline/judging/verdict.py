"""Reading the judge's rating out of its free-text reply: only an explicit verdict line counts.

The decisive line is the reply's last line labelled ``Verdict:`` (markdown, a list number or "final" may precede
the label); a reply with no ``Verdict:`` line falls back to its last ``Rating:``, ``Score:`` or ``Answer:`` line.
That one line must name exactly one level of the metric's scale: the level's definition (case and punctuation
aside), a whole-word abbreviation of exactly one definition ("Partially" for "Partially correct"), a definition
followed by words that neither negate it nor name another level ("Helpful, with minor gaps"), or, on a float scale,
a level's value ("3", "4/4"). Anything else (no such line, an empty or unusable value, a negation such as
"not correct", a hedge between two levels) is a VerdictParseError, never a guess: no earlier verdict line and no
level mentioned elsewhere in the reply (which may be text quoted from the judged answer) is ever used instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eval_pipeline.judging.explanation import clean_explanation
from eval_pipeline.judging.metric import JudgeMetric, RatingLevel, normalize_label

VERDICT_KEYWORDS: tuple[str, ...] = ("verdict", "rating", "score", "answer")
PRIMARY_KEYWORD = "verdict"
"""A reply's last line with this label decides; the other labels count only in a reply without one."""
LABEL_PREFIX = r"[ \t>#*_`\-]*(?:\d+[.)][ \t]*)?(?:final[ \t]+)?"
"""What may precede a verdict label at the start of a line: markdown, a list number, "final"."""
LABEL_END = r"[ \t*_`]*[:：]"
"""What ends a verdict label: optional markdown, then a colon."""
VERDICT_LINE_RE = re.compile(
    rf"^{LABEL_PREFIX}(?P<label>{'|'.join(VERDICT_KEYWORDS)}){LABEL_END}[ \t*_`]*(?P<value>[^\n]*?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE)
"""A line such as ``Verdict: Good``, ``**Verdict:** Good``, ``> Rating: 3``, ``2. Final answer: B``."""

NEGATION_RE = re.compile(r"(?<![^\W_])(?:not|no|never|cannot|neither|nor)(?![^\W_])|n['’]t(?![^\W_])",
                         re.IGNORECASE)
"""Words that turn a rating around ("not correct", "Good? No", "isn't helpful")."""

_LEAD_CHARS = " \t*_`'\"“”‘’«»[({<"
_TRAIL_CHARS = " \t*_`'\"“”‘’«»])}>.,;:!?"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER_RE = re.compile(rf"^{_NUMBER}")
_OUT_OF_RE = re.compile(rf"^(?P<number>{_NUMBER})[ \t]*(?:/|out[ \t]+of)[ \t]*{_NUMBER}", re.IGNORECASE)
"""A rating out of a maximum (``4/4``, ``3 out of 5``): the maximum is dropped."""
_NUMBERS_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)")


class VerdictParseError(ValueError):
    """The judge's reply holds no explicit rating that can be matched to the metric's scale."""


@dataclass(frozen=True)
class Verdict:
    """The level the judge chose, its normalized score, and the judge's explanation (the reply without its verdict
    line, fences and labels: ``judging.explanation``)."""

    level: RatingLevel
    score: float
    explanation: str


@dataclass(frozen=True)
class VerdictLine:
    """The reply's decisive verdict line: its span in the reply, the label and the value it gives."""

    start: int
    end: int
    label: str
    value: str


def clean_value(raw: str) -> str:
    """A verdict line's value with markdown emphasis, quotes, brackets and trailing punctuation removed."""
    return raw.strip().lstrip(_LEAD_CHARS).rstrip(_TRAIL_CHARS).strip()


def verdict_lines(reply: str) -> list[re.Match[str]]:
    """Every verdict-like line of ``reply``, last first."""
    return list(VERDICT_LINE_RE.finditer(reply))[::-1]


def decisive_line(reply: str) -> VerdictLine | None:
    """The line that holds the judge's verdict: the last ``Verdict:`` line, else the last Rating/Score/Answer line.

    A label with nothing after it takes its value from the next non-blank line (``**Verdict:**`` then ``Good``).
    """
    lines = list(VERDICT_LINE_RE.finditer(reply))
    primary = [line for line in lines if line.group("label").casefold() == PRIMARY_KEYWORD]
    chosen = (primary or lines)[-1:]
    if not chosen:
        return None
    line = chosen[0]
    start, end, value = line.start(), line.end(), line.group("value")
    if not clean_value(value):
        following = re.match(r"\s*\n[ \t]*([^\n]*\S)[ \t]*(?:\n|$)", reply[end:])
        if following and not VERDICT_LINE_RE.match(following.group(1)):
            value, end = following.group(1), end + following.end(1)
    return VerdictLine(start, end, line.group("label"), value)


def _phrase_pattern(definition: str) -> re.Pattern[str]:
    words = normalize_label(definition).split()
    return re.compile(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words)) + r"(?![^\W_])", re.IGNORECASE)


def _names_other_level(metric: JudgeMetric, chosen: RatingLevel, text: str) -> bool:
    """Whether ``text`` names a level other than ``chosen``: its definition as a whole phrase, or (float scales) its
    value as a number."""
    others = [level for level in metric.rating_scale if level != chosen]
    if any(_phrase_pattern(level.definition).search(text) for level in others):
        return True
    if not metric.float_scale:
        return False
    values = {float(level.value) for level in others} - {float(chosen.value)}
    return any(float(number) in values for number in _NUMBERS_RE.findall(text))


def _clean_rest(metric: JudgeMetric, chosen: RatingLevel, rest: str) -> bool:
    """Whether the words after a named level leave it standing: no negation, no other level named."""
    return not NEGATION_RE.search(rest) and not _names_other_level(metric, chosen, rest)


def _by_value(metric: JudgeMetric, value: str) -> RatingLevel | None:
    """On a float scale, the level whose value ``value`` starts with (``3``, ``3 - helpful``)."""
    number = _NUMBER_RE.match(value)
    if not metric.float_scale or not number:
        return None
    hits = [level for level in metric.rating_scale if float(level.value) == float(number.group(0))]
    if len(hits) != 1:
        return None
    return hits[0] if _clean_rest(metric, hits[0], value[number.end():]) else None


def match_level(metric: JudgeMetric, raw: str) -> RatingLevel | None:
    """The one level that ``raw`` (a verdict line's value) names, or None when it names none or is ambiguous."""
    cleaned = clean_value(raw)
    cleaned = _OUT_OF_RE.sub(lambda match: match.group("number"), cleaned, count=1)
    value = normalize_label(cleaned)
    if not value:
        return None
    keyed = [(normalize_label(level.definition), level) for level in metric.rating_scale]
    exact = [level for key, level in keyed if key == value]
    if exact:
        return exact[0]
    numeric = _by_value(metric, cleaned)
    if numeric is not None:
        return numeric
    # A definition followed by more words ("Good, because ..."): the longest such definition, if the rest of the
    # value neither negates it nor names another level.
    leading = [(key, level) for key, level in keyed if value.startswith(key + " ")]
    if leading:
        key, level = max(leading, key=lambda hit: len(hit[0]))
        named = _phrase_pattern(level.definition).search(cleaned)
        rest = cleaned[named.end():] if named else value[len(key):]
        return level if _clean_rest(metric, level, rest) else None
    # Whole words that begin exactly one definition ("Partially" for "Partially correct"), with no negation.
    if NEGATION_RE.search(cleaned):
        return None
    abbreviated = [level for key, level in keyed if key.startswith(value + " ")]
    return abbreviated[0] if len(abbreviated) == 1 else None


def _scale(metric: JudgeMetric) -> str:
    return " / ".join(metric.definitions)


def _start(text: str) -> str:
    return repr(" ".join(text.split())[:120])


def parse_verdict(metric: JudgeMetric, reply: str) -> Verdict:
    """The judge's rating from its decisive verdict line (see the module docstring); VerdictParseError otherwise."""
    text = reply or ""
    line = decisive_line(text)
    if line is None:
        raise VerdictParseError(f"no 'Verdict:' line rating {metric.name} ({_scale(metric)}) in the judge's "
                                f"reply: {_start(text)}")
    level = match_level(metric, line.value)
    if level is None:
        raise VerdictParseError(f"the judge's last {line.label!r} line ({clean_value(line.value)!r}) names no single "
                                f"level of {metric.name} ({_scale(metric)}); reply: {_start(text)}")
    explanation = clean_explanation(text[:line.start] + text[line.end:])  # fences and labels around it removed
    return Verdict(level, metric.score(level), explanation)
