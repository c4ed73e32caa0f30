"""Span files: the ``files`` data source. Each path is a file, a folder (its ``*.jsonl``, ``*.json``, ``*.pb`` and
``*.binpb`` files, sorted) or a glob; relative paths are read from the project root.

A file's format is told by its content, not its name (except protobuf, ``.pb``/``.binpb``):

- JSONL with one flat span or event record per line (the CloudWatch/ADOT shape of ``traces.records``);
- JSONL where each line is a whole OTLP/JSON document (what the OpenTelemetry Collector's file exporter writes);
  both kinds of line may be mixed;
- one OTLP/JSON document per file (pretty-printed or not), or a JSON list of records or documents;
- OTLP protobuf (``traces.otlp.otlp_protobuf_records``).

Files are streamed line by line: a record is yielded as soon as its line is read. Blank lines are skipped; a line
that is not a JSON object is an ``EvalInputError`` naming the file and the line.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.otlp import is_otlp_document, otlp_json_records, otlp_protobuf_records
from eval_pipeline.traces.records import RawRecord
from eval_pipeline.traces.request import FilesSource

SPAN_FILE_SUFFIXES = (".jsonl", ".json", ".pb", ".binpb")
"""The files a folder contributes."""
PROTOBUF_SUFFIXES = (".pb", ".binpb")
_GLOB_CHARACTERS = frozenset("*?[")


def read_files_source(source: FilesSource, *, root: Path | None = None, client: Any = None) -> pd.DataFrame:
    """The spans of a ``files`` data source as a ``traces`` table (unfiltered: ``traces.ingest`` filters)."""
    from eval_pipeline.traces.otel_records import traces_frame

    return traces_frame(read_span_files(list(source.paths), root))


def read_span_files(paths: Iterable[str], root: Path | None = None) -> Iterator[RawRecord]:
    """Every span and event record in the files ``paths`` name, file by file, in file order."""
    base = Path(root) if root is not None else Path.cwd()
    for path, named in span_file_paths(paths, base):
        yield from read_span_file(path, _display(path, base), named=named)


def span_file_paths(paths: Iterable[str], root: Path) -> list[tuple[Path, bool]]:
    """The files ``paths`` name, each once, in the order given (a folder's and a glob's files sorted), with
    whether the file was named itself (not found in a folder or by a glob); a path that names nothing is an
    ``EvalInputError`` naming it."""
    found: dict[Path, bool] = {}
    for given in paths:
        for path, named in _expand(str(given), root):
            found[path] = found.get(path, False) or named
    return list(found.items())


def read_span_file(path: Path, source: str | None = None, *, named: bool = True) -> Iterator[RawRecord]:
    """The records of one span file (``source``: the name errors and spans give it; the path by default).

    A file found in a folder or by a glob (``named=False``) that holds one JSON object which is neither an OTLP
    document nor a record (say the ``evaluationMetadata`` kept beside the spans) is not span data: it gives no
    records. Named, it is an error."""
    source = source if source is not None else str(path)
    if path.suffix.lower() in PROTOBUF_SUFFIXES:
        yield from otlp_protobuf_records(path.read_bytes(), source)
        return
    with path.open(encoding="utf-8") as handle:
        yield from _json_records(handle, source, named)


def _json_records(handle: IO[str], source: str, named: bool) -> Iterator[RawRecord]:
    """JSONL, one record or OTLP document a line; a file whose first record does not parse as one line is read
    as one JSON document instead (a pretty-printed OTLP export)."""
    first = True
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            if first:
                whole = _whole_document(handle)
                if whole is not None:
                    if named or not _other_document(whole):
                        yield from _document_records(whole, source, None)
                    return
            raise EvalInputError(f"not JSON ({exc})", file=source, line=number) from None
        if first and not named and _other_document(value):
            return
        first = False
        yield from _line_records(value, source, number)


def _whole_document(handle: IO[str]) -> Any | None:
    """The whole file as one JSON value, or None when it is not one."""
    handle.seek(0)
    try:
        return json.load(handle)
    except ValueError:
        return None


def _other_document(value: Any) -> bool:
    """A JSON object that is neither an OTLP document nor a span or event record."""
    return isinstance(value, dict) and not is_otlp_document(value) and "traceId" not in value


def _line_records(value: Any, source: str, line: int) -> Iterator[RawRecord]:
    if isinstance(value, dict | list):
        yield from _document_records(value, source, line)
    else:
        raise EvalInputError(f"a span file line is a JSON object (a span or event record, or an OTLP document) "
                             f"or a list of them, not {_json_type(value)}", file=source, line=line)


def _document_records(value: Any, source: str, line: int | None) -> Iterator[RawRecord]:
    """A JSON value (a line's, or the whole file's): one OTLP document or flat record, or a list of them."""
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        field = f"[{index}]" if isinstance(value, list) else None
        if is_otlp_document(item):
            yield from otlp_json_records(item, source, line=line)
        elif isinstance(item, dict):
            yield RawRecord(_checked_record(item, source, line, field), source, line)
        else:
            raise EvalInputError(f"expected a span or event record, or an OTLP document (a JSON object), not "
                                 f"{_json_type(item)}", file=source, line=line, field=field)


def _checked_record(record: dict[str, Any], source: str, line: int | None, prefix: str | None) -> dict[str, Any]:
    """A flat record whose ids are strings (the rest is read by ``traces.otel_records``)."""
    for name in ("traceId", "spanId", "parentSpanId"):
        value = record.get(name)
        if name == "traceId" and value is None:
            raise EvalInputError("a span or event record needs a traceId", file=source, line=line,
                                 field=f"{prefix}.{name}" if prefix else name)
        if value is not None and not (isinstance(value, str) and (value or name == "parentSpanId")):
            raise EvalInputError(f"expected a hex id string, got {value!r}", file=source, line=line,
                                 field=f"{prefix}.{name}" if prefix else name)
    for name in ("attributes", "resource", "scope"):
        value = record.get(name)
        if value is not None and not isinstance(value, dict):
            raise EvalInputError(f"expected a JSON object, got {_json_type(value)}", file=source, line=line,
                                 field=f"{prefix}.{name}" if prefix else name)
    return record


def _expand(given: str, root: Path) -> list[tuple[Path, bool]]:
    path = Path(given).expanduser()
    path = path if path.is_absolute() else root / path
    if _GLOB_CHARACTERS & set(given):
        matches = sorted(Path(match) for match in glob.glob(str(path), recursive=True))
        files = [match for match in matches if match.is_file()]
        if not files:
            raise EvalInputError("matches no file", file=given, field="paths")
        return [(match, False) for match in files]
    if path.is_dir():
        files = sorted(child for child in path.iterdir()
                       if child.is_file() and child.suffix.lower() in SPAN_FILE_SUFFIXES)
        if not files:
            raise EvalInputError(f"folder holds no span file ({', '.join(SPAN_FILE_SUFFIXES)})", file=given,
                                 field="paths")
        return [(child, False) for child in files]
    if path.is_file():
        return [(path, True)]
    raise EvalInputError("no such file or folder", file=given, field="paths")


def _display(path: Path, root: Path) -> str:
    """The name a file goes by in errors and on its spans: relative to the root when it is inside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
