"""An lm-eval split's items (docs) from local JSONL or JSON files, as ``datasets`` gives them to a task: one dict
per row, every row with every column of the split (a field a row lacks is None)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval_pipeline.data.jsonl import jsonl_records
from eval_pipeline.data.sources import read_source
from eval_pipeline.errors import EvalInputError


@dataclass(frozen=True)
class Located:
    """One item and where it was read."""

    doc: dict[str, Any]
    file: str
    line: int


def read_docs(files: Sequence[str]) -> list[Located]:
    """Every row of the files, in order; a JSON file holds a list of rows, a JSONL file one row per line."""
    rows: list[Located] = []
    for uri in files:
        for source in read_source(uri):
            if source.name.endswith(".json") and source.data.lstrip()[:1] == b"[":
                try:
                    records = json.loads(source.data)
                except json.JSONDecodeError as exc:
                    raise EvalInputError(f"not JSON: {exc.msg}", file=source.name, line=exc.lineno) from None
                located = [(index + 1, record) for index, record in enumerate(records)]
            else:
                located = list(jsonl_records(source.data, source.name))
            for line, record in located:
                if not isinstance(record, dict):
                    raise EvalInputError("a row must be a JSON object", file=source.name, line=line)
                rows.append(Located(record, source.name, line))
    columns = list(dict.fromkeys(key for row in rows for key in row.doc))
    return [Located({key: row.doc.get(key) for key in columns}, row.file, row.line) for row in rows]
