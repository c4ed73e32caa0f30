"""The latest progress line of a running Dagster run, for ``EvaluationExecution.wait()``: read from the run's event
log (its ``context.log.info`` messages that are ``eval_pipeline.progress`` lines), a page after the last one read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eval_pipeline.progress import is_progress_line

Page = tuple[list[str], str | None, bool]
"""A page of a run's log messages: the messages, the cursor after them, whether more follow."""

PROGRESS_LOGS_QUERY = """
query SdkRunProgress($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection { cursor hasMore events { __typename ... on LogMessageEvent { message } } }
    ... on PythonError { message }
  }
}
"""


class RunProgress:
    """Follows runs' logs: ``latest(run_id)`` is the newest progress line so far (None before the first); each
    call reads only what was logged since the previous one. ``fetch(run_id, cursor)`` gives a ``Page``."""

    def __init__(self, fetch: Callable[[str, str | None], Page]) -> None:
        self._fetch = fetch
        self._cursors: dict[str, str | None] = {}
        self._latest: dict[str, str] = {}

    def latest(self, run_id: str) -> str | None:
        cursor = self._cursors.get(run_id)
        while True:
            messages, cursor, more = self._fetch(run_id, cursor)
            for message in messages:
                if is_progress_line(message):
                    self._latest[run_id] = message
            if not more:
                break
        self._cursors[run_id] = cursor
        return self._latest.get(run_id)


def instance_pages(instance: Any) -> Callable[[str, str | None], Page]:
    """Pages of a run's user log messages from a Dagster instance (in-process executions)."""
    def fetch(run_id: str, cursor: str | None) -> Page:
        connection = instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
        messages = [record.event_log_entry.user_message for record in connection.records
                    if record.event_log_entry.dagster_event is None]
        return messages, connection.cursor, connection.has_more

    return fetch


def graphql_pages(execute: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Callable[[str, str | None], Page]:
    """Pages of a run's log messages through a webserver's GraphQL (``execute(query, variables)``)."""
    def fetch(run_id: str, cursor: str | None) -> Page:
        logs = execute(PROGRESS_LOGS_QUERY, {"runId": run_id, "cursor": cursor})["logsForRun"]
        if logs.get("__typename") != "EventConnection":
            return [], cursor, False
        messages = [e["message"] for e in logs["events"] if e.get("__typename") == "LogMessageEvent"]
        return messages, logs["cursor"], bool(logs["hasMore"])

    return fetch
