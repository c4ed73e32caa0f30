"""HumanEval rows (``task_id``, ``prompt``, ``test``, ``entry_point``, optional ``canonical_solution``).

The task id becomes the sample id, the prompt the input and the canonical solution (when present) the reference;
``test`` and ``entry_point`` stay in the row's metadata, where the ``code_exec`` scorer finds them.
"""

from __future__ import annotations

from typing import Any

from eval_pipeline.errors import EvalInputError

REQUIRED = ("task_id", "prompt", "test", "entry_point")


def looks_like_humaneval(record: dict[str, Any]) -> bool:
    """A task id with tests or an entry point: HumanEval (a row missing the rest then gets a precise error)."""
    return "task_id" in record and ("test" in record or "entry_point" in record)


def convert_humaneval(record: dict[str, Any], file: str, line: int) -> dict[str, Any]:
    """One HumanEval row as the format-specific part of a ``samples`` row; errors name file, line and field."""
    for name in REQUIRED:
        value = record.get(name)
        if value is None:
            raise EvalInputError(f"missing: a HumanEval row needs {', '.join(REQUIRED)}", file=file, line=line,
                                 field=name)
        if not isinstance(value, str) or not value.strip():
            raise EvalInputError("must be a non-empty string", file=file, line=line, field=name)
    if not record["entry_point"].isidentifier():
        raise EvalInputError(f"must be a Python function name, got {record['entry_point']!r}", file=file, line=line,
                             field="entry_point")
    solution = record.get("canonical_solution")
    if solution is not None and not isinstance(solution, str):
        raise EvalInputError("must be a string", file=file, line=line, field="canonical_solution")
    return {
        "sample_id": record["task_id"],
        "input": record["prompt"],
        "input_kind": "text",
        "reference": solution,
        "consumed": {"task_id", "prompt", "canonical_solution"},
    }
