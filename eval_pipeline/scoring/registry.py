"""Scorer kinds a suite can name (a ``Registry``; plugins add theirs through the entry point group
``eval_pipeline.scorers``), and scoring a generations table into the ``scores`` table."""

from __future__ import annotations

import pandas as pd

from eval_pipeline.data.schemas import SCORES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.registry import Registry
from eval_pipeline.scoring.kinds import Score, ScorerKind
from eval_pipeline.scoring.spec import ScorerSpec

SCORERS: Registry[ScorerKind] = Registry("scorer", "eval_pipeline.scorers")
for _name, _path in (
    ("exact_match", "eval_pipeline.scoring.kinds:EXACT_MATCH"),
    ("f1", "eval_pipeline.scoring.kinds:F1"),
    ("rouge_l", "eval_pipeline.scoring.kinds:ROUGE_L"),
    ("contains", "eval_pipeline.scoring.kinds:CONTAINS"),
    ("numeric_match", "eval_pipeline.scoring.kinds:NUMERIC_MATCH"),
    ("regex_match", "eval_pipeline.scoring.kinds:REGEX_MATCH"),
    ("code_exec", "eval_pipeline.scoring.kinds:CODE_EXEC"),
):
    SCORERS.register(_name, _path)

__all__ = ["SCORERS", "Score", "ScorerKind", "score_generations", "score_one", "scorer_problem", "validate_scorers"]


def scorer_problem(spec: ScorerSpec) -> tuple[str, str] | None:
    """What is wrong with a scorer spec, as (its key, the reason), or None when it can run."""
    if spec.kind not in SCORERS:
        return ("type" if spec.type else "name"), SCORERS.unknown(spec.kind)
    return SCORERS.get(spec.kind).problem(spec)


def validate_scorers(specs: list[ScorerSpec], file: str | None = None) -> None:
    """Fail before any work when a scorer is unknown or its spec is wrong (a regex_match pattern that won't compile)."""
    for index, spec in enumerate(specs):
        problem = scorer_problem(spec)
        if problem is not None:
            key, reason = problem
            suffix = f".{key}" if key not in ("name", "type") else ""
            raise EvalInputError(reason, file=file, field=f"scorers[{index}]{suffix}")


def score_one(spec: ScorerSpec, prediction: str, reference: str | None) -> Score:
    if reference is None:
        return Score(None, error=f"sample has no reference answer for scorer {spec.name!r}")
    return SCORERS.get(spec.kind).score(spec, prediction, reference)


def score_generations(samples: pd.DataFrame, generations: pd.DataFrame, specs: list[ScorerSpec]) -> pd.DataFrame:
    """One row per generation × scorer; a failed generation gives error rows, never dropped ones."""
    references = dict(zip(samples["sample_id"], samples["reference"], strict=True))
    tables = {spec.name: SCORERS.get(spec.kind).score_table(spec, samples, generations) for spec in specs}
    rows = []
    for position, generation in enumerate(generations.itertuples(index=False)):
        for spec in specs:
            table = tables[spec.name]
            if generation.error is not None and not pd.isna(generation.error):
                result = Score(None, error=f"generation failed: {generation.error}")
            elif table is not None:
                result = table[position] or Score(None, error="not scored")
            else:
                reference = references.get(generation.sample_id)
                result = score_one(spec, generation.output or "", None if pd.isna(reference) else reference)
            rows.append({
                "sample_id": generation.sample_id, "model": generation.model,
                "sample_index": generation.sample_index, "scorer": spec.name, "score": result.value,
                "extracted": result.extracted, "request_hash": generation.request_hash, "error": result.error,
            })
    return pd.DataFrame(rows, columns=SCORES.names)
