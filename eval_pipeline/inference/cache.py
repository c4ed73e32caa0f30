"""A persistent cache of finished generations, keyed by a hash of everything that changes the output."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest


def request_hash(identity: dict[str, Any], params: GenerationParams, request: GenerationRequest) -> str:
    """The cache key of one request: backend identity, parameters (seed included), input and sample index."""
    payload = {
        "sampler": identity,
        "params": asdict(params),
        "messages": list(request.messages),
        "sample_index": request.sample_index,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class RequestCache:
    """SQLite-backed; safe for several processes (a backfill's runs) writing at once. Only successes go in."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process; cheap commits
        self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, value FROM completions WHERE key IN ({marks})", chunk)
                found.update((key, Completion(**json.loads(value))) for key, value in rows)
        return found

    def put_many(self, items: Iterable[tuple[str, Completion]]) -> int:
        rows = [(key, json.dumps(asdict(c))) for key, c in items if c.error is None]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)", rows)
            self._db.commit()
        return len(rows)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self._db.close()
