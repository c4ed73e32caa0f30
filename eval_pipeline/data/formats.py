"""Format converters: gen_qa, Bedrock evaluation and chat-messages JSONL into the canonical ``samples`` table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from eval_pipeline.data import likelihood_formats
from eval_pipeline.data.humaneval import convert_humaneval, looks_like_humaneval
from eval_pipeline.data.jsonl import jsonl_records
from eval_pipeline.data.messages import ChatMessage, messages_to_json
from eval_pipeline.data.schemas import SAMPLES
from eval_pipeline.data.sources import SourceFile, read_source
from eval_pipeline.errors import EvalInputError

FORMATS = ("auto", "gen_qa", "bedrock", "messages", "multiple_choice", "text", "humaneval")
_ID_FIELDS = ("sample_id", "id", "recordId")
_ROLES = {"system", "user", "assistant", "tool"}

Row = dict[str, Any]


def load_samples(uri: str, fmt: str = "auto", limit: int | None = None,
                 breakdown_keys: Sequence[str] = ()) -> pd.DataFrame:
    """Read every file of a dataset URI and convert it into the ``samples`` table; each breakdown key must be
    present in at least one row (a column or a field of the row), else the breakdown would silently be empty."""
    if fmt not in FORMATS:
        raise EvalInputError(f"unknown dataset format {fmt!r}; known formats: {', '.join(FORMATS)}",
                             file=uri, field="format")
    rows: list[Row] = []
    for source in read_source(uri):
        rows += convert_file(source, fmt)
        if limit is not None and len(rows) >= limit:
            rows = rows[:limit]
            break
    _check_unique_ids(rows)
    check_breakdown_keys(rows, breakdown_keys, uri, limit)
    return pd.DataFrame(rows, columns=SAMPLES.names)


def check_breakdown_keys(rows: list[Row], keys: Sequence[str], uri: str, limit: int | None = None) -> None:
    """Refuse a breakdown key that no row has, neither as a samples column nor as a field of its metadata."""
    for key in keys:
        if not any(_row_has(row, key) for row in rows):
            scope = f"the first {len(rows)} rows (limit {limit})" if limit is not None else f"all {len(rows)} rows"
            fields = sorted({k for row in rows for k in json.loads(row["metadata"] or "{}")} | {"category"})
            raise EvalInputError(f"breakdown key {key!r} is in none of {scope}; fields the rows have: "
                                 f"{', '.join(fields)}", file=uri, field="breakdown_keys")


def _row_has(row: Row, key: str) -> bool:
    if key in SAMPLES.names:
        return row.get(key) is not None
    return json.loads(row["metadata"] or "{}").get(key) is not None


def convert_file(source: SourceFile, fmt: str = "auto") -> list[Row]:
    """Convert one JSONL file (or, for ``text``, a plain-text file: one document); errors name the file, the line
    and the field."""
    if fmt == "text" and not source.name.endswith((".jsonl", ".json")):
        records = [(1, likelihood_formats.plain_text_record(source.data, source.name))]
    else:
        records = list(_parse_jsonl(source))
    if not records:
        return []
    chosen = fmt if fmt != "auto" else detect_format(records[0][1], source.name, records[0][0])
    convert = _CONVERTERS[chosen]
    return [_finish(record, convert(record, source.name, line), source.name, line)
            for line, record in records]


def detect_format(record: Row, file: str, line: int) -> str:
    """The format that a row's keys imply."""
    if looks_like_humaneval(record):
        return "humaneval"
    if "messages" in record:
        return "messages"
    if "choices" in record and "answer" in record and "question" in record:
        return "multiple_choice"
    if ("referenceResponse" in record or "modelResponses" in record) and "query" not in record:
        return "bedrock"
    if "prompt" in record or "query" in record:
        return "gen_qa"
    if "text" in record:
        return "text"
    raise EvalInputError(
        f"cannot detect the dataset format from keys {sorted(record)}: expected 'prompt' or 'query' (gen_qa), "
        "'prompt' + 'referenceResponse' (bedrock), 'messages' (chat), 'question' + 'choices' + 'answer' "
        "(multiple_choice) or 'text' (a corpus); set dataset.format to say which",
        file=file, line=line)


def _parse_jsonl(source: SourceFile) -> Iterable[tuple[int, Row]]:
    return jsonl_records(source.data, source.name)


def _text_field(record: Row, names: tuple[str, ...], file: str, line: int, *, required: bool) -> str | None:
    for name in names:
        if name in record and record[name] is not None:
            value = record[name]
            if not isinstance(value, str):
                raise EvalInputError(f"must be a string, got {type(value).__name__}", file=file, line=line,
                                     field=name)
            if required and not value.strip():
                raise EvalInputError("is empty", file=file, line=line, field=name)
            return value
    if required:
        raise EvalInputError(f"missing: the row needs one of {', '.join(repr(n) for n in names)}",
                             file=file, line=line, field=names[0])
    return None


def _gen_qa(record: Row, file: str, line: int) -> Row:
    prompt_key = "prompt" if "prompt" in record else "query"
    return {
        "input": _text_field(record, ("prompt", "query"), file, line, required=True),
        "input_kind": "text",
        "reference": _text_field(record, ("referenceResponse", "response", "answer"), file, line,
                                 required=False),
        "consumed": {prompt_key, "referenceResponse", "response", "answer"},
    }


def _bedrock(record: Row, file: str, line: int) -> Row:
    responses = record.get("modelResponses")
    if responses is not None and not (isinstance(responses, list)
                                      and all(isinstance(r, dict) and "response" in r for r in responses)):
        raise EvalInputError("must be a list of {'response', 'modelIdentifier'} objects", file=file,
                             line=line, field="modelResponses")
    return {
        "input": _text_field(record, ("prompt",), file, line, required=True),
        "input_kind": "text",
        "reference": _text_field(record, ("referenceResponse",), file, line, required=False),
        "consumed": {"prompt", "referenceResponse"},
    }


def _messages(record: Row, file: str, line: int) -> Row:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise EvalInputError("must be a non-empty list of {'role', 'content'} objects", file=file, line=line,
                             field="messages")
    for index, message in enumerate(messages):
        if (not isinstance(message, dict) or message.get("role") not in _ROLES
                or not isinstance(message.get("content"), str)):
            raise EvalInputError(f"each message needs a role in {sorted(_ROLES)} and string content",
                                 file=file, line=line, field=f"messages[{index}]")
        try:  # tool calls and tool results are read (and kept) as typed messages
            ChatMessage.from_dict(message)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EvalInputError(f"is not a chat message ({type(exc).__name__}: {exc})", file=file, line=line,
                                 field=f"messages[{index}]") from None
    reference = _text_field(record, ("reference", "answer", "referenceResponse"), file, line, required=False)
    if messages[-1]["role"] == "assistant":
        if reference is None:
            reference = messages[-1]["content"]
        messages = messages[:-1]
    if not any(m["role"] == "user" for m in messages):
        raise EvalInputError("has no user message to answer", file=file, line=line, field="messages")
    return {
        "input": messages_to_json([ChatMessage.from_dict(m) for m in messages]),
        "input_kind": "messages",
        "reference": reference,
        "consumed": {"messages", "reference", "answer", "referenceResponse"},
    }


_CONVERTERS: dict[str, Callable[[Row, str, int], Row]] = {
    "gen_qa": _gen_qa,
    "bedrock": _bedrock,
    "messages": _messages,
    "multiple_choice": likelihood_formats.multiple_choice,
    "text": likelihood_formats.text_document,
    "humaneval": convert_humaneval,
}


def _finish(record: Row, converted: Row, file: str, line: int) -> Row:
    """Add the columns every format shares: id, category, choices, metadata, provenance and hash."""
    consumed = converted.pop("consumed") | {"category", "choices", *_ID_FIELDS}
    sample_id = next((str(record[k]) for k in _ID_FIELDS if record.get(k) is not None), None)
    category = record.get("category")
    if category is not None and not isinstance(category, str | int | float | bool):
        raise EvalInputError("must be a string", file=file, line=line, field="category")
    choices = record.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise EvalInputError("must be a list", file=file, line=line, field="choices")
    row = {
        "sample_id": sample_id or f"{PurePosixPath(file).name}:{line}",
        **converted,
        "choices": json.dumps(choices, ensure_ascii=False) if choices is not None else None,
        "category": str(category) if category is not None else None,
        "metadata": json.dumps({k: v for k, v in record.items() if k not in consumed}, ensure_ascii=False,
                               sort_keys=True),
        "source": file,
        "line": line,
    }
    hashed = {k: row[k] for k in ("input", "input_kind", "reference", "choices", "category", "metadata")}
    row["row_hash"] = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    return row


def _check_unique_ids(rows: list[Row]) -> None:
    seen: dict[str, Row] = {}
    for row in rows:
        first = seen.setdefault(row["sample_id"], row)
        if first is not row:
            raise EvalInputError(f"duplicate sample id {row['sample_id']!r} (first at {first['source']}:"
                                 f"{first['line']})", file=row["source"], line=row["line"], field="id")
