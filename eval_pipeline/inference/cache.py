"""A persistent cache of finished requests, keyed by a hash of everything that changes the answer.

Three tables: ``completions`` (generations, judge replies), ``scores`` (log-likelihood figures) and ``claims``
(which run is sending which missing key right now, so concurrent runs send each request once: see ``send_once``).
Only successes are stored. Where they live is chosen by the location's URL scheme (``CACHE_STORES``): a plain path
or ``sqlite:///path`` is one SQLite file on this machine (a corrupt file is an ``EvalInputError`` naming it);
``postgresql://…`` is a Postgres database that workers on several machines share (``cache_postgres``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

from eval_pipeline.data.messages import ToolCall
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.process_identity import process_alive
from eval_pipeline.registry import Registry

_T = TypeVar("_T")
_REQUEST_FIELDS = frozenset(f.name for f in fields(GenerationRequest)) - {"messages", "sample_index", "tools"}


def request_hash(identity: dict[str, Any], params: GenerationParams, request: GenerationRequest,
                 fields: Sequence[str] = ()) -> str:
    """The cache key of one request: backend identity, parameters (seed included), input and sample index, plus
    the request ``fields`` the sampler declares part of its identity (``request_fields``: for ``precomputed``, the
    ``sample_id``, since its answer belongs to the item, not to the prompt). The tools offered are part of the key
    only when there are some, so a request without tools keeps the key it had before requests could carry them."""
    payload: dict[str, Any] = {
        "sampler": identity,
        "params": asdict(params),
        "messages": [message.to_dict() for message in request.messages],
        "sample_index": request.sample_index,
    }
    if request.tools:
        payload["tools"] = [tool.to_dict() for tool in request.tools]
    for name in sorted(fields):
        payload[f"request.{name}"] = getattr(request, name)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def completion_to_json(completion: Completion) -> str:
    """A completion as stored: its fields, ``tool_calls`` as ``{id, name, arguments}`` objects (left out when
    empty, so a plain completion is stored as it was before completions carried tool calls)."""
    data = asdict(completion)
    if not completion.tool_calls:
        data.pop("tool_calls", None)
    return json.dumps(data)


def completion_from_json(text: str) -> Completion:
    """Read ``completion_to_json``'s text back (tool calls as ``ToolCall`` objects)."""
    data = json.loads(text)
    data["tool_calls"] = tuple(ToolCall(**call) for call in data.get("tool_calls") or ())
    return Completion(**data)


def request_fields(sampler: object) -> tuple[str, ...]:
    """The request fields a sampler declares part of each request's identity (``request_fields``, default none)."""
    declared = tuple(getattr(sampler, "request_fields", ()))
    unknown = [name for name in declared if name not in _REQUEST_FIELDS]
    if unknown:
        raise TypeError(f"{type(sampler).__name__}.request_fields names {unknown}: not GenerationRequest fields "
                        f"(allowed: {sorted(_REQUEST_FIELDS)})")
    return declared


def request_keys(sampler: Any, params: GenerationParams, requests: Sequence[GenerationRequest]) -> list[str]:
    """Every request's cache key for ``sampler`` (its identity and its declared request fields)."""
    identity, names = sampler.identity(), request_fields(sampler)
    return [request_hash(identity, params, request, names) for request in requests]


def payload_hash(payload: dict[str, Any]) -> str:
    """A cache key for any JSON payload (log-likelihood requests use it with the scorer's identity)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def process_owner() -> str:
    """This process as a claim owner: ``host|pid|nonce`` (the nonce tells two caches of one process apart)."""
    return f"{socket.gethostname()}|{os.getpid()}|{os.urandom(4).hex()}"


def owner_alive(owner: str) -> bool:
    """False when the owner is a process of this host that no longer exists; else True (its lease decides)."""
    host, _, rest = owner.partition("|")
    pid_text = rest.partition("|")[0]
    return host != socket.gethostname() or not pid_text.isdigit() or process_alive(int(pid_text))


SQLITE_SCHEME = "sqlite"
CACHE_STORES: Registry[type[RequestCache]] = Registry("request cache store", "eval_pipeline.cache_stores")
"""Request cache stores by URL scheme: ``sqlite`` (``RequestCache`` itself) and ``postgresql``/``postgres``."""


def location_scheme(location: str | Path) -> str:
    """The URL scheme of a cache location; a plain path is ``sqlite``."""
    text = str(location)
    scheme, separator, _ = text.partition("://")
    return scheme.lower() if separator and scheme.replace("+", "").isalnum() else SQLITE_SCHEME


def sqlite_file(location: str | Path) -> Path:
    """The file of an SQLite location: a plain path, or ``sqlite:///relative`` / ``sqlite:////absolute``."""
    text = str(location)
    return Path(text[len("sqlite:///"):] if text.startswith("sqlite:///") else location)


class RequestCache:
    """The request cache: ``RequestCache(location)`` opens the store its URL scheme names (``CACHE_STORES``).
    This class is the SQLite store; safe for several processes (a backfill's runs) writing at once. Only
    successes go in. A store subclass changes only the connection, the transactions and the SQL dialect."""

    def __new__(cls, location: str | Path, **_: Any) -> RequestCache:
        if cls is RequestCache:
            scheme = location_scheme(location)
            if scheme not in CACHE_STORES:
                raise EvalInputError(CACHE_STORES.unknown(scheme), file=str(location))
            cls = CACHE_STORES.get(scheme)
        return super().__new__(cls)

    def __init__(self, location: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = sqlite_file(location)
        self.location = str(self.path)
        """Where the cache is, for messages (a database URL without its password)."""
        self.clock = clock
        """Wall-clock seconds, shared by every process using the file (claim leases); injectable for tests."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._guarded(lambda: sqlite3.connect(self.path, timeout=60, check_same_thread=False,
                                                         isolation_level=None))
        self._guarded(self._setup)

    def _setup(self) -> None:
        for attempt in range(50):  # two processes creating one fresh file: the WAL switch can report "locked"
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process; cheap commits
        with self._transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                             "expires REAL NOT NULL)")

    def _table(self, name: str) -> str:
        """The name of one of the three tables in this store (a shared database prefixes a namespace)."""
        return name

    def _guarded(self, action: Callable[[], _T]) -> _T:
        """Run ``action``; a file SQLite cannot read is an EvalInputError naming it and the remedy."""
        try:
            return action()
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise EvalInputError(
                f"the request cache is corrupt or not an SQLite database ({exc}). Delete it (and any "
                f"{self.path.name}-wal / -shm beside it): it is rebuilt on the next run, which sends the requests "
                "it held again", file=str(self.path)) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: writers queue on SQLite's lock, with the 60 s busy timeout)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _select(self, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            rows += self._execute(sql.format(marks=",".join("?" * len(chunk))), chunk)
        return rows

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders); its rows."""
        return self._db.execute(sql, params).fetchall()

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    # -- finished requests -----------------------------------------------------------------------------------

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(dict.fromkeys(keys))
        with self._lock:
            rows = self._guarded(lambda: self._select(
                f"SELECT key, value FROM {self._table('completions')} WHERE key IN ({{marks}})", keys))
        return {key: completion_from_json(value) for key, value in rows}

    def put_many(self, items: Iterable[tuple[str, Completion]]) -> int:
        """Store the successes (failures are never cached) and drop their claims: they are done."""
        rows = [(key, completion_to_json(c)) for key, c in items if c.error is None]
        return self._put("completions", rows)

    def get_scores(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored log-likelihood figures (JSON objects) by key."""
        keys = list(dict.fromkeys(keys))
        with self._lock:
            rows = self._guarded(lambda: self._select(
                f"SELECT key, value FROM {self._table('scores')} WHERE key IN ({{marks}})", keys))
        return {key: json.loads(value) for key, value in rows}

    def put_scores(self, items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        return self._put("scores", [(key, json.dumps(value)) for key, value in items])

    def _put(self, table: str, rows: list[tuple[str, str]]) -> int:
        def write() -> None:
            with self._transaction():
                self._executemany(f"INSERT INTO {self._table(table)} (key, value) VALUES (?, ?) "
                                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value", rows)
                self._executemany(f"DELETE FROM {self._table('claims')} WHERE key = ?", [(key,) for key, _ in rows])

        if rows:
            with self._lock:
                self._guarded(write)
        return len(rows)

    # -- claims: who is sending a missing key now ------------------------------------------------------------

    def claim(self, keys: Sequence[str], owner: str, lease_s: float) -> tuple[list[str], list[str]]:
        """Claim the keys that are neither stored nor claimed by another live owner whose lease runs: returns
        (claimed by ``owner`` now, claimed by others). Stored keys are in neither list. A claim of a dead owner
        (a process of this host that is gone), an expired one or ``owner``'s own is (re)taken."""
        keys = list(dict.fromkeys(keys))

        def run() -> tuple[list[str], list[str]]:
            now = self.clock()
            with self._transaction():
                stored = {row[0] for table in ("completions", "scores") for row in self._select(
                    f"SELECT key FROM {self._table(table)} WHERE key IN ({{marks}})", keys)}
                held = {key: (holder, expires) for key, holder, expires in self._select(
                    f"SELECT key, owner, expires FROM {self._table('claims')} WHERE key IN ({{marks}})", keys)}
                alive: dict[str, bool] = {}
                mine, theirs = [], []
                for key in keys:
                    if key in stored:
                        continue
                    holder, expires = held.get(key, (owner, 0.0))
                    if holder != owner and expires > now and alive.setdefault(holder, owner_alive(holder)):
                        theirs.append(key)
                    else:
                        mine.append(key)
                self._executemany(f"INSERT INTO {self._table('claims')} (key, owner, expires) VALUES (?, ?, ?) "
                                  "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                                  [(key, owner, now + lease_s) for key in mine])
            return mine, theirs

        if not keys:
            return [], []
        with self._lock:
            return self._guarded(run)

    def renew(self, owner: str, lease_s: float) -> None:
        """Extend every claim of ``owner`` (its heartbeat while it sends)."""
        def run() -> None:
            with self._transaction():
                self._execute(f"UPDATE {self._table('claims')} SET expires = ? WHERE owner = ?",
                              (self.clock() + lease_s, owner))

        with self._lock:
            self._guarded(run)

    def release(self, keys: Iterable[str], owner: str) -> None:
        """Drop ``owner``'s claims on ``keys`` (those that failed: a waiting run then sends them itself)."""
        rows = [(key, owner) for key in dict.fromkeys(keys)]

        def run() -> None:
            with self._transaction():
                self._executemany(f"DELETE FROM {self._table('claims')} WHERE key = ? AND owner = ?", rows)

        if rows:
            with self._lock:
                self._guarded(run)

    def claims(self) -> dict[str, str]:
        """Current claims, key → owner (for inspection and tests)."""
        with self._lock:
            rows = self._guarded(lambda: self._execute(f"SELECT key, owner FROM {self._table('claims')}"))
        return dict(rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._guarded(lambda: self._execute(f"SELECT COUNT(*) FROM {self._table('completions')}"))[0][0])

    def close(self) -> None:
        self._db.close()


def check_cache_files(cache_paths: Iterable[str | Path]) -> None:
    """Open each cache once (creating it if missing): a corrupt file or an unreachable database raises
    EvalInputError naming it."""
    for path in cache_paths:
        RequestCache(path).close()


CACHE_STORES.register(SQLITE_SCHEME, RequestCache)
for _scheme in ("postgresql", "postgres"):
    CACHE_STORES.register(_scheme, "eval_pipeline.inference.cache_postgres:PostgresRequestCache")
