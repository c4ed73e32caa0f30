"""Reading JSON Lines exactly: UTF-8 (a leading byte-order mark allowed), one JSON object per ``\\n``-terminated
line, and every error naming the file and the line.

Lines are split on ``\\n`` only (a ``\\r`` before it is dropped): ``str.splitlines`` would also split inside JSON
strings holding U+2028, U+0085 or ``\\x1c``. Control characters other than ``\\n`` inside a string are accepted
unescaped too (``json.loads(strict=False)``): the text is unambiguous, and some writers emit them raw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from eval_pipeline.errors import EvalInputError

BOM = b"\xef\xbb\xbf"
_JSON_BLANK = " \t\r"


def decode_text(data: bytes, file: str) -> str:
    """The bytes as UTF-8 text, without a leading byte-order mark; an error names the line of the first bad byte."""
    body = data.removeprefix(BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[:exc.start].count(b"\n") + 1
        raise EvalInputError(f"not UTF-8 text (byte {exc.start + len(data) - len(body)}: "
                             f"{body[exc.start:exc.start + 1]!r})", file=file, line=line) from exc


def split_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only, each without its ``\\r\\n`` / ``\\n`` ending."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def jsonl_records(data: bytes, file: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line."""
    text = decode_text(data, file)
    lines = split_lines(text)
    last = max((i for i, line in enumerate(lines) if line.strip(_JSON_BLANK)), default=-1)
    for index, raw in enumerate(lines):
        if not raw.strip(_JSON_BLANK):
            continue
        number = index + 1
        try:
            record = json.loads(raw, strict=False)
        except json.JSONDecodeError as exc:
            at_end = exc.msg.startswith("Unterminated string") or exc.pos >= len(raw.rstrip(_JSON_BLANK))
            if index == last and not text.endswith("\n") and at_end:
                raise EvalInputError("truncated last line: the file ends in the middle of a JSON object "
                                     f"({exc.msg})", file=file, line=number) from exc
            raise EvalInputError(f"malformed JSON: {exc.msg} at column {exc.colno}", file=file,
                                 line=number) from exc
        if not isinstance(record, dict):
            raise EvalInputError(f"each line must be a JSON object, got {type(record).__name__}", file=file,
                                 line=number)
        yield number, record
