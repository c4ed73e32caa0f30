"""Scorer names a suite can use, and scoring a generations table into the ``scores`` table."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from eval_pipeline.data.schemas import SCORES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.scoring import code_exec, text
from eval_pipeline.scoring.spec import ScorerSpec

TextScorer = Callable[[str, str], float]

SIMPLE_SCORERS: dict[str, TextScorer] = {
    "exact_match": text.exact_match,
    "f1": text.token_f1,
    "rouge_l": text.rouge_l,
    "contains": text.contains,
    "numeric_match": text.numeric_match,
}
SCORER_TYPES = (*SIMPLE_SCORERS, "regex_match", "code_exec")


@dataclass(frozen=True)
class Score:
    value: float | None
    extracted: str | None = None
    error: str | None = None


def scorer_problem(spec: ScorerSpec) -> tuple[str, str] | None:
    """What is wrong with a scorer spec, as (its key, the reason), or None when it can run."""
    if spec.kind not in SCORER_TYPES:
        close = difflib.get_close_matches(spec.kind, SCORER_TYPES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ("type" if spec.type else "name",
                f"unknown scorer {spec.kind!r}{hint}; known scorers: {', '.join(SCORER_TYPES)}")
    if spec.kind == "regex_match":
        if not spec.pattern:
            return "pattern", "regex_match needs a 'pattern'"
        try:
            re.compile(spec.pattern)
        except re.error as exc:
            return "pattern", f"bad regular expression: {exc}"
    return None


def validate_scorers(specs: list[ScorerSpec], file: str | None = None) -> None:
    """Fail before any work when a scorer is unknown or its pattern does not compile."""
    for index, spec in enumerate(specs):
        problem = scorer_problem(spec)
        if problem is not None:
            key, reason = problem
            suffix = ".pattern" if key == "pattern" else ""
            raise EvalInputError(reason, file=file, field=f"scorers[{index}]{suffix}")


def score_one(spec: ScorerSpec, prediction: str, reference: str | None) -> Score:
    if reference is None:
        return Score(None, error=f"sample has no reference answer for scorer {spec.name!r}")
    if spec.kind == "regex_match":
        extracted = text.regex_extract(prediction, spec.pattern or "", spec.ignore_case)
        if extracted is None:
            return Score(0.0, extracted=None)
        return Score(text.exact_match(extracted, reference), extracted=extracted)
    return Score(SIMPLE_SCORERS[spec.kind](prediction, reference))


def score_generations(samples: pd.DataFrame, generations: pd.DataFrame, specs: list[ScorerSpec]) -> pd.DataFrame:
    """One row per generation × scorer; a failed generation gives error rows, never dropped ones."""
    references = dict(zip(samples["sample_id"], samples["reference"], strict=True))
    executed = {spec.name: code_exec.score_code_exec(samples, generations) for spec in specs
                if spec.kind == "code_exec"}  # run as one parallel batch per scorer
    rows = []
    for position, generation in enumerate(generations.itertuples(index=False)):
        for spec in specs:
            if generation.error is not None and not pd.isna(generation.error):
                result = Score(None, error=f"generation failed: {generation.error}")
            elif spec.name in executed:
                result = Score(*executed[spec.name][position])  # type: ignore[misc]
            else:
                reference = references.get(generation.sample_id)
                result = score_one(spec, generation.output or "", None if pd.isna(reference) else reference)
            rows.append({
                "sample_id": generation.sample_id, "model": generation.model,
                "sample_index": generation.sample_index, "scorer": spec.name, "score": result.value,
                "extracted": result.extracted, "request_hash": generation.request_hash, "error": result.error,
            })
    return pd.DataFrame(rows, columns=SCORES.names)
