"""The request cache on PostgreSQL: one database shared by workers on several machines.

``RequestCache("postgresql://user:password@host:5432/db?namespace=judgments")`` opens it (the ``postgresql`` and
``postgres`` schemes of ``CACHE_STORES``). Same tables, keys and semantics as the SQLite file; each namespace (the
``namespace`` query parameter, default ``requests``; the pipeline uses ``generations`` and ``judgments``) has its
own three tables, ``<namespace>_completions``, ``<namespace>_scores`` and ``<namespace>_claims``, so the request and
judge caches share one database. Every write transaction of a namespace holds one transaction-level advisory lock,
as SQLite's ``BEGIN IMMEDIATE`` does for the file: claims and stores of concurrent runs, on any machine, are
serialized, so a request is sent once and stored once. A claim's owner on another host is never presumed dead: its
lease decides (``owner_alive``).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg2
from psycopg2.extras import execute_batch

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.cache import RequestCache

DEFAULT_NAMESPACE = "requests"
_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"
"""The namespace's write lock, held until the transaction ends."""
_NAMESPACE = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def split_namespace(url: str) -> tuple[str, str]:
    """The connection URL (without ``namespace``; libpq refuses unknown parameters) and the namespace."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [value for key, value in query if key == "namespace"]
    namespace = names[-1] if names else DEFAULT_NAMESPACE
    if not _NAMESPACE.fullmatch(namespace):
        raise EvalInputError(f"the request cache namespace {namespace!r} must be lower-case letters, digits and _ "
                             "(starting with a letter or _; at most 40)", file=redacted(url), field="namespace")
    rest = urlencode([(key, value) for key, value in query if key != "namespace"])
    return urlunsplit(parts._replace(scheme="postgresql", query=rest)), namespace


def redacted(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class PostgresRequestCache(RequestCache):
    """``RequestCache`` on a Postgres database (see the module docstring)."""

    def __init__(self, location: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.dsn, self.namespace = split_namespace(str(location))
        self.location = f"{redacted(self.dsn)} (namespace {self.namespace})"
        self._lock_name = f"eval_pipeline.{self.namespace}"
        self.path = self.location  # what ``send_once``'s wait message names
        self.clock = clock
        self._lock = threading.Lock()
        try:
            self._db = psycopg2.connect(self.dsn, connect_timeout=30, application_name="eval_pipeline cache")
        except psycopg2.OperationalError as exc:
            detail = " ".join(str(exc).split())
            raise EvalInputError(f"cannot connect to the request cache database ({detail}); check "
                                 "EVAL_PIPELINE_CACHE_URL: host, port, user, password, database",
                                 file=redacted(self.dsn)) from None
        self._db.autocommit = True  # transactions are explicit (``_transaction``), as on SQLite
        self._setup()

    def _setup(self) -> None:
        with self._transaction():  # under the lock: two workers creating the tables at once do not collide
            for name in ("completions", "scores"):
                self._execute(f"CREATE TABLE IF NOT EXISTS {self._table(name)} "
                              "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._execute(f"CREATE TABLE IF NOT EXISTS {self._table('claims')} (key TEXT PRIMARY KEY, "
                          "owner TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)")
            self._execute(f"CREATE INDEX IF NOT EXISTS {self._table('claims')}_owner "
                          f"ON {self._table('claims')} (owner)")

    def _table(self, name: str) -> str:
        return f"{self.namespace}_{name}"

    def _guarded(self, action: Callable[[], Any]) -> Any:
        return action()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction holding the namespace's advisory lock until it ends."""
        with self._db.cursor() as cursor:
            try:
                cursor.execute(f"BEGIN; {_LOCK}", (self._lock_name,))  # one round trip
                yield
            except BaseException:
                with contextlib.suppress(psycopg2.Error):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _put(self, table: str, rows: list[tuple[str, str]]) -> int:
        """Store rows and drop their claims in one round trip (a run stores each completion as it arrives)."""
        if not rows:
            return 0
        latest = dict(rows)  # one statement may not upsert a key twice: the last value wins, as one by one would
        with self._lock, self._db.cursor() as cursor:
            values = b",".join(cursor.mogrify("(%s, %s)", row) for row in latest.items()).decode()
            values = values.replace("%", "%%")  # quoted literals now, inside a statement that takes parameters
            try:
                cursor.execute(f"BEGIN; {_LOCK}; INSERT INTO {self._table(table)} (key, value) VALUES {values} "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value; "
                               f"DELETE FROM {self._table('claims')} WHERE key = ANY(%s); COMMIT",
                               (self._lock_name, list(latest)))
            except BaseException:
                with contextlib.suppress(psycopg2.Error):
                    cursor.execute("ROLLBACK")
                raise
        return len(rows)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._db.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), tuple(params))
            return cursor.fetchall() if cursor.description is not None else []

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._db.cursor() as cursor:
                execute_batch(cursor, sql.replace("?", "%s"), [tuple(row) for row in rows], page_size=500)

    def close(self) -> None:
        self._db.close()
