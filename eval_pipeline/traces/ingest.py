"""From a data source (``request.DataSourceConfig``) to a ``traces`` table: each kind of source is a registered
reader; the filters (service names, session ids, time range, session/trace ids) apply the same way to all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.data.schemas import TRACES
from eval_pipeline.registry import Registry
from eval_pipeline.traces.request import DataSourceConfig, FilterConfig

Reader = Callable[..., pd.DataFrame]
"""``reader(source_config, *, root: Path | None, client: Any | None) -> traces table`` (unfiltered or pre-filtered;
``ingest`` filters again)."""

TRACE_SOURCES: Registry[Reader] = Registry("trace source")
TRACE_SOURCES.register("files", "eval_pipeline.traces.files:read_files_source")
TRACE_SOURCES.register("cloudWatchLogs", "eval_pipeline.traces.cloudwatch:read_cloudwatch_source")
TRACE_SOURCES.register("rollouts", "eval_pipeline.traces.from_rollouts:read_rollouts_source")


def ingest(config: DataSourceConfig, *, root: Path | None = None, client: Any | None = None) -> pd.DataFrame:
    """The source's spans, filtered, as a ``traces`` table sorted by session, trace and start time."""
    reader = TRACE_SOURCES.get(config.kind)
    frame = reader(config.source, root=root, client=client)
    services = list(getattr(config.source, "serviceNames", []) or [])
    return filter_spans(frame, config.filter, services)


def filter_spans(frame: pd.DataFrame, filters: FilterConfig, services: list[str] | None = None) -> pd.DataFrame:
    """The spans of the sessions that pass the filters. A session is kept whole: it passes the time range when
    any of its spans starts inside it, and the service filter when any of its spans names one of ``services``."""
    if frame.empty:
        return frame.reindex(columns=TRACES.names)
    keep = pd.Series(True, index=frame.index)
    sessions = frame["session_id"]
    if services:
        keep &= sessions.isin(set(sessions[frame["service"].isin(services)]))
    if filters.sessionIds:
        keep &= sessions.isin(set(filters.sessionIds))
    if filters.timeRange is not None:
        start = frame["start_ns"].astype("float64")
        inside = pd.Series(True, index=frame.index)
        if filters.timeRange.startTime is not None:
            inside &= start >= filters.timeRange.startTime.timestamp() * 1e9
        if filters.timeRange.endTime is not None:
            inside &= start <= filters.timeRange.endTime.timestamp() * 1e9
        keep &= sessions.isin(set(sessions[inside]))
    if filters.sessionTraceIds:
        wanted = {(entry.sessionId, trace) for entry in filters.sessionTraceIds for trace in entry.traceIds}
        pairs = pd.Series(list(zip(sessions, frame["trace_id"], strict=True)), index=frame.index)
        keep &= pairs.isin(wanted)
    kept = frame[keep]
    return kept.sort_values(["session_id", "trace_id", "start_ns"], kind="stable").reset_index(drop=True)
