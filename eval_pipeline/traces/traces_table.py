"""The ``traces`` table built as spans come, a few thousand rows at a time, so that the spans' Python objects of
only one chunk are alive beside the table's own columns (``spans_frame`` of a whole list holds both in full).

The result equals ``spans_frame`` of the same spans, with the trace sessions filled in as ``otel_records`` does
(a span without a session id takes the one its trace's other spans carry): each chunk's column is made by the same
pandas inference as a whole column would be, and chunks are joined without copying their data. Where chunks were
inferred differently (a chunk whose column is all missing is ``object``), the missing chunks take the others'
type; anything else is rebuilt from the whole column.
"""

from __future__ import annotations

from operator import attrgetter

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import TRACES
from eval_pipeline.traces.spans import INTEGER_COLUMNS, Span

CHUNK_ROWS = 8192
_KEPT = ("session_id", "trace_id")
"""Kept as Python lists to the end: the trace sessions are filled in from the whole of them."""
_CHUNKED = tuple(name for name in TRACES.names if name not in _KEPT)


class TracesTable:
    """Add spans in order; ``frame()`` is the ``traces`` table of all of them."""

    def __init__(self, chunk_rows: int = CHUNK_ROWS) -> None:
        self.chunk_rows = chunk_rows
        self._pending: list[Span] = []
        self._kept: dict[str, list[object]] = {name: [] for name in _KEPT}
        self._chunks: dict[str, list[pd.Series]] = {name: [] for name in _CHUNKED}

    def add(self, span: Span) -> None:
        self._pending.append(span)
        if len(self._pending) >= self.chunk_rows:
            self._flush()

    def frame(self) -> pd.DataFrame:
        self._flush()
        sessions, traces = self._kept["session_id"], self._kept["trace_id"]
        _fill_trace_sessions(sessions, traces)
        rows = len(traces)
        columns: dict[str, object] = {name: self._kept[name] for name in _KEPT}
        for name in _CHUNKED:
            chunks = self._chunks.pop(name)
            empty = pd.array([], dtype="Int64") if name in INTEGER_COLUMNS else []
            columns[name] = _joined(chunks, rows) if chunks else empty
        return pd.DataFrame({name: columns[name] for name in TRACES.names}, columns=TRACES.names, copy=False)

    def _flush(self) -> None:
        spans, self._pending = self._pending, []
        if not spans:
            return
        for name in _KEPT:
            self._kept[name] += map(attrgetter(name), spans)
        for name in _CHUNKED:
            values = list(map(attrgetter(name), spans))
            self._chunks[name].append(pd.Series(pd.array(values, dtype="Int64")) if name in INTEGER_COLUMNS
                                      else pd.Series(values))


def _fill_trace_sessions(sessions: list[object], traces: list[object]) -> None:
    known: dict[object, set[object]] = {}
    for session, trace in zip(sessions, traces, strict=True):
        if session:
            known.setdefault(trace, set()).add(session)
    for index, (session, trace) in enumerate(zip(sessions, traces, strict=True)):
        found = known.get(trace)
        if session is None and found is not None and len(found) == 1:
            sessions[index] = next(iter(found))


def _joined(chunks: list[pd.Series], rows: int) -> pd.Series | list[object]:
    """One column from its chunks, as pandas would have made it from the whole column."""
    if len(chunks) == 1:
        return chunks[0].reset_index(drop=True)
    empty = [_is_object(chunk.dtype) and chunk.isna().all() for chunk in chunks]
    kinds = {chunk.dtype for chunk, missing in zip(chunks, empty, strict=True) if not missing}
    if not kinds:
        return [None] * rows
    if len(kinds) == 1:
        kind = kinds.pop()
        if _is_object(kind) or not any(empty):
            return pd.concat(chunks, ignore_index=True)
        if isinstance(kind, pd.StringDtype):
            return pd.concat([pd.Series(pd.array([None] * len(chunk), dtype=kind)) if missing else chunk
                              for chunk, missing in zip(chunks, empty, strict=True)], ignore_index=True)
    return [None if _missing(value) else value for chunk in chunks for value in chunk.tolist()]


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _is_object(dtype: object) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind == "O"
