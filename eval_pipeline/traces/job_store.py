"""Batch-evaluation jobs and custom evaluators that outlive the process: one SQLite file under the state folder
(``<home>/batch_evaluations/jobs.sqlite``), read and written by ``traces.batch.BatchEvaluationClient``.

A job row holds the validated request (JSON), its fingerprint (what a reused ``clientToken`` is compared with),
its status, timestamps, the results summary, ``errorDetails``, the calibration summary and the process that owns
it while it runs (``host|pid|nonce``), so that a later client can tell a job left behind by a dead process.
Every write is one transaction; a status change is a compare-and-set (``transition``), so a stop and a finishing
worker cannot overwrite each other.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval_pipeline.traces.service_errors import ConflictException, ResourceNotFoundException

ACTIVE = ("PENDING", "IN_PROGRESS", "STOPPING")
"""Statuses of a job that has not ended."""
FINISHED = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED")


@dataclass
class JobRecord:
    """One batch-evaluation job as stored."""

    job_id: str
    name: str
    arn: str
    status: str
    request: dict[str, Any]
    """The validated request in the service's names (JSON-able; ``clientToken`` left out)."""
    fingerprint: str
    created_at: float
    updated_at: float
    client_token: str | None = None
    results: dict[str, Any] | None = None
    """``evaluationResults`` (session counts and evaluator summaries)."""
    error_details: list[str] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    owner: str | None = None
    seq: int = 0


@dataclass
class EvaluatorRecord:
    """One custom evaluator (``create_evaluator``) as stored."""

    evaluator_id: str
    name: str
    arn: str
    level: str
    config: dict[str, Any]
    created_at: float
    updated_at: float
    description: str | None = None
    client_token: str | None = None
    fingerprint: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    client_token TEXT UNIQUE,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    results TEXT,
    error_details TEXT NOT NULL DEFAULT '[]',
    calibration TEXT,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS evaluators (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluator_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL,
    level TEXT NOT NULL,
    config TEXT NOT NULL,
    description TEXT,
    client_token TEXT UNIQUE,
    fingerprint TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""

_JOB_COLUMNS = ("seq", "job_id", "name", "arn", "status", "request", "fingerprint", "client_token", "created_at",
                "updated_at", "results", "error_details", "calibration", "owner")
_EVALUATOR_COLUMNS = ("evaluator_id", "name", "arn", "level", "config", "description", "client_token",
                      "fingerprint", "created_at", "updated_at")
_JSON_FIELDS = {"request", "results", "error_details", "calibration", "config"}


class JobStore:
    """Jobs and custom evaluators in one SQLite file (a connection per operation; safe across threads and
    processes)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.RLock()
        db = sqlite3.connect(self.path, timeout=30.0)
        try:
            db.executescript(_SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            try:
                db.execute("PRAGMA busy_timeout = 30000")
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.close()

    # --- jobs ---------------------------------------------------------------------------------------------

    def create_job(self, job: JobRecord, *, replay: Callable[[JobRecord], JobRecord]) -> JobRecord:
        """Insert ``job`` unless its ``client_token`` names a job already: then ``replay(existing)`` decides (it
        returns the existing job or raises). A name held by another job is a ConflictException."""
        with self._connect() as db:
            if job.client_token is not None:
                row = db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE client_token = ?",
                                 (job.client_token,)).fetchone()
                if row is not None:
                    return replay(_job(row))
            taken = db.execute("SELECT job_id FROM jobs WHERE name = ?", (job.name,)).fetchone()
            if taken is not None:
                raise ConflictException(f"a batch evaluation named {job.name!r} exists already ({taken[0]}); names "
                                        "are unique among jobs not deleted", field="batchEvaluationName")
            values = _job_values(job)
            columns = [c for c in _JOB_COLUMNS if c != "seq"]
            cursor = db.execute(f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                                [values[c] for c in columns])
            job.seq = int(cursor.lastrowid or 0)
        return job

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def require_job(self, job_id: str) -> JobRecord:
        job = self.get_job(job_id)
        if job is None:
            raise ResourceNotFoundException(f"no batch evaluation with id {job_id!r}", field="batchEvaluationId")
        return job

    def list_jobs(self, *, limit: int, before_seq: int | None = None) -> list[JobRecord]:
        """Newest first (by creation order); ``before_seq`` continues after a page."""
        where, args = ("WHERE seq < ?", [before_seq]) if before_seq is not None else ("", [])
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs {where} ORDER BY seq DESC LIMIT ?",
                              [*args, limit]).fetchall()
        return [_job(row) for row in rows]

    def jobs_with_status(self, statuses: Iterable[str]) -> list[JobRecord]:
        wanted = list(statuses)
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE status IN "
                              f"({', '.join('?' * len(wanted))}) ORDER BY seq", wanted).fetchall()
        return [_job(row) for row in rows]

    def transition(self, job_id: str, allowed: Iterable[str], status: str, **changes: Any) -> JobRecord | None:
        """Set ``status`` (and ``changes``: results, error_details, calibration, owner) when the job's status is
        one of ``allowed``; return the updated job, or None when it was not (nothing is written then)."""
        allowed = tuple(allowed)
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or row[_JOB_COLUMNS.index("status")] not in allowed:
                return None
            job = _job(row)
            for name, value in changes.items():
                setattr(job, name, value)
            job.status, job.updated_at = status, self.clock()
            values = _job_values(job)
            names = ["status", "updated_at", *changes]
            db.execute(f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in names)} WHERE job_id = ?",
                       [*(values[n] for n in names), job_id])
        return job

    def update(self, job_id: str, **changes: Any) -> None:
        """Write ``changes`` (not the status) whatever the status is."""
        if not changes:
            return
        values = {name: _encode(name, value) for name, value in changes.items()}
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in values)}, updated_at = ? WHERE job_id = ?",
                       [*values.values(), self.clock(), job_id])

    def claim(self, job_id: str, expected_owner: str | None, owner: str) -> bool:
        """Take over a job from ``expected_owner`` (a dead process); False when another client took it first."""
        with self._connect() as db:
            cursor = db.execute("UPDATE jobs SET owner = ? WHERE job_id = ? AND owner IS ?",
                                (owner, job_id, expected_owner))
        return cursor.rowcount == 1

    def status(self, job_id: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else str(row[0])

    def remove_job(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    # --- custom evaluators ------------------------------------------------------------------------------------

    def create_evaluator(self, record: EvaluatorRecord, *,
                         replay: Callable[[EvaluatorRecord], EvaluatorRecord]) -> EvaluatorRecord:
        """Insert ``record`` (same ``client_token`` rules as jobs); a name in use is a ConflictException."""
        with self._connect() as db:
            if record.client_token is not None:
                row = db.execute(f"SELECT {', '.join(_EVALUATOR_COLUMNS)} FROM evaluators WHERE client_token = ?",
                                 (record.client_token,)).fetchone()
                if row is not None:
                    return replay(_evaluator(row))
            taken = db.execute("SELECT evaluator_id FROM evaluators WHERE name = ?", (record.name,)).fetchone()
            if taken is not None:
                raise ConflictException(f"an evaluator named {record.name!r} exists already ({taken[0]})",
                                        field="evaluatorName")
            values = {name: _encode(name, getattr(record, name)) for name in _EVALUATOR_COLUMNS}
            db.execute(f"INSERT INTO evaluators ({', '.join(_EVALUATOR_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(_EVALUATOR_COLUMNS))})", [values[c] for c in _EVALUATOR_COLUMNS])
        return record

    def get_evaluator(self, evaluator_id: str) -> EvaluatorRecord | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_EVALUATOR_COLUMNS)} FROM evaluators WHERE evaluator_id = ?",
                             (evaluator_id,)).fetchone()
        return None if row is None else _evaluator(row)

    def list_evaluators(self) -> list[EvaluatorRecord]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(_EVALUATOR_COLUMNS)} FROM evaluators ORDER BY seq").fetchall()
        return [_evaluator(row) for row in rows]

    def remove_evaluator(self, evaluator_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM evaluators WHERE evaluator_id = ?", (evaluator_id,))


def _encode(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return None if value is None else json.dumps(value, sort_keys=True, default=str)
    return value


def _decode(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return None if value is None else json.loads(value)
    return value


def _job_values(job: JobRecord) -> dict[str, Any]:
    return {name: _encode(name, getattr(job, name)) for name in _JOB_COLUMNS}


def _job(row: tuple[Any, ...]) -> JobRecord:
    values = {name: _decode(name, value) for name, value in zip(_JOB_COLUMNS, row, strict=True)}
    values["error_details"] = values["error_details"] or []
    return JobRecord(**values)


def _evaluator(row: tuple[Any, ...]) -> EvaluatorRecord:
    return EvaluatorRecord(**{name: _decode(name, value) for name, value in zip(_EVALUATOR_COLUMNS, row, strict=True)})
