"""The built-in kinds of deterministic scorer, each registered by name in ``scoring.registry.SCORERS``.

A kind checks its spec when a suite loads (``problem``) and scores one answer against its reference (``score``); a
kind that scores a whole table at once (running programs in parallel) overrides ``score_table`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eval_pipeline.scoring import text
from eval_pipeline.scoring.spec import ScorerSpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Score:
    value: float | None
    extracted: str | None = None
    error: str | None = None


class ScorerKind:
    """A kind of scorer; the defaults accept any spec and score nothing as a table."""

    def problem(self, spec: ScorerSpec) -> tuple[str, str] | None:
        """What is wrong with ``spec`` for this kind, as (its key, the reason), or None when it can run."""
        return None

    def score(self, spec: ScorerSpec, prediction: str, reference: str) -> Score:
        raise NotImplementedError(f"scorer {spec.kind!r} scores whole tables only")

    def score_table(self, spec: ScorerSpec, samples: pd.DataFrame, generations: pd.DataFrame
                    ) -> list[Score | None] | None:
        """One score per generation row, in order (None for a failed generation), or None to score row by row."""
        return None


@dataclass(frozen=True)
class TextMatch(ScorerKind):
    """A function of (prediction, reference) → a score in [0, 1]."""

    function: Callable[[str, str], float]

    def score(self, spec: ScorerSpec, prediction: str, reference: str) -> Score:
        return Score(self.function(prediction, reference))


class RegexMatch(ScorerKind):
    """The last match of ``pattern`` (its first group if it has one), exact-matched against the reference."""

    def problem(self, spec: ScorerSpec) -> tuple[str, str] | None:
        if not spec.pattern:
            return "pattern", f"{spec.kind} needs a 'pattern'"
        try:
            re.compile(spec.pattern)
        except re.error as exc:
            return "pattern", f"bad regular expression: {exc}"
        return None

    def score(self, spec: ScorerSpec, prediction: str, reference: str) -> Score:
        extracted = text.regex_extract(prediction, spec.pattern or "", spec.ignore_case)
        if extracted is None:
            return Score(0.0, extracted=None)
        return Score(text.exact_match(extracted, reference), extracted=extracted)


class CodeExec(ScorerKind):
    """The generated program run against the item's tests in a sandbox, all of a table's programs in parallel."""

    def score_table(self, spec: ScorerSpec, samples: pd.DataFrame, generations: pd.DataFrame
                    ) -> list[Score | None] | None:
        from eval_pipeline.scoring.code_exec import score_code_exec

        return [None if result is None else Score(*result) for result in score_code_exec(samples, generations)]


EXACT_MATCH = TextMatch(text.exact_match)
F1 = TextMatch(text.token_f1)
ROUGE_L = TextMatch(text.rouge_l)
CONTAINS = TextMatch(text.contains)
NUMERIC_MATCH = TextMatch(text.numeric_match)
REGEX_MATCH = RegexMatch()
CODE_EXEC = CodeExec()
