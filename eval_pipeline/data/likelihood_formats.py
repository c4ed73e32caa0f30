"""Dataset rows for log-likelihood tasks: multiple choice (``question``, ``choices``, ``answer`` index) and text
corpora (``text`` rows, or whole plain-text files), as ``samples`` rows."""

from __future__ import annotations

import json
from typing import Any

from eval_pipeline.errors import EvalInputError

Row = dict[str, Any]


def multiple_choice(record: Row, file: str, line: int) -> Row:
    """``question`` (or ``prompt``/``query``), ``choices`` (a list of strings), ``answer`` (0-based index)."""
    question = next((record[k] for k in ("question", "prompt", "query") if isinstance(record.get(k), str)), None)
    if question is None:
        raise EvalInputError("missing: the row needs a 'question' string", file=file, line=line, field="question")
    choices = record.get("choices")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise EvalInputError("must be a list of at least two non-empty strings", file=file, line=line,
                             field="choices")
    answer = record.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise EvalInputError(f"must be the 0-based index of the right choice, got {answer!r}", file=file, line=line,
                             field="answer")
    if not 0 <= answer < len(choices):
        raise EvalInputError(f"index {answer} is out of range for {len(choices)} choices", file=file, line=line,
                             field="answer")
    return {"input": question, "input_kind": "text", "reference": str(answer),
            "consumed": {"question", "prompt", "query", "answer"}}


def text_document(record: Row, file: str, line: int) -> Row:
    """One document of a corpus: ``text``."""
    text = record.get("text")
    if not isinstance(text, str) or not text:
        raise EvalInputError("missing: the row needs a non-empty 'text' string", file=file, line=line, field="text")
    return {"input": text, "input_kind": "text", "reference": None, "consumed": {"text"}}


def plain_text_record(data: bytes, file: str) -> Row:
    """A whole ``.txt`` file as one ``text`` record; bytes that are not UTF-8 are an error naming the line."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError as exc:
        raise EvalInputError(f"not UTF-8 text (byte {exc.start})", file=file,
                             line=data[:exc.start].count(b"\n") + 1) from exc


def choice_list(value: str | None) -> list[str]:
    """A samples row's ``choices`` column as a list."""
    return list(json.loads(value)) if value else []
