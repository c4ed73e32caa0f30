"""The JSON record of one SDK execution under ``<home>/executions/<id>.json``, so any process can find it.

Writes are atomic (a temporary file renamed over the record) and read-modify-write updates hold an exclusive
``flock`` on ``<id>.lock``, so the runner thread, ``stop()`` and ``refresh()`` in other processes never lose
each other's changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eval_pipeline import paths

TERMINAL_STATES = ("Succeeded", "Failed", "Stopped")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def executions_dir() -> Path:
    path = paths.home() / "executions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_path(execution_id: str, folder: Path | None = None) -> Path:
    if not _ID_RE.match(execution_id):
        raise ValueError(f"not an execution id: {execution_id!r}")
    return (folder or executions_dir()) / f"{execution_id}.json"


def snapshot_dir(record_file: Path) -> Path:
    """Where an ended execution keeps copies of its tables: ``<home>/executions/<id>/``."""
    return record_file.with_suffix("")


def new_execution_id(suite: str, prefix: str = "llmaj") -> str:
    """``<prefix>-<suite>-<8 hex>``; the prefix names the evaluator kind (``llmaj``, ``mtrl``)."""
    return f"{prefix}-{suite}-{uuid.uuid4().hex[:8]}"


def execution_id_from(id_or_arn: str) -> str:
    """The id in an id or an ARN-like ``arn:eval-pipeline:...:execution/<id>``."""
    return id_or_arn.rstrip("/").rsplit("/", 1)[-1]


def write_record(path: Path, record: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(record, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(temporary, path)


def read_record(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyError(f"no execution record {path.stem!r} in {path.parent}") from None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[dict[str, Any]]:
    """The record, held under the lock; changes made to the yielded dict are written back on exit."""
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            record = read_record(path)
            yield record
            write_record(path, record)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_record(path: Path, **changes: Any) -> dict[str, Any]:
    """Apply ``changes`` under the lock; a terminal ``state`` is never replaced by another state."""
    with locked(path) as record:
        if "state" in changes and record.get("state") in TERMINAL_STATES:
            changes = {k: v for k, v in changes.items() if k not in ("state", "failure_reason", "finished_at")}
        record.update(changes)
        return dict(record)


def all_records(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every readable record, newest first."""
    records = []
    for path in (folder or executions_dir()).glob("*.json"):
        with contextlib.suppress(KeyError, ValueError, OSError):
            records.append(read_record(path))
    return sorted(records, key=lambda r: r.get("created_at", 0), reverse=True)
