"""Finished rollouts, saved the moment each finishes, so a killed evaluation resumes without re-running them.

One SQLite file beside the request cache (``<home>/cache/rollouts.sqlite``), one row per rollout keyed by its
``rollout_id``: the hash of the task's ``row_hash``, the agent's identity (model or service, sampling parameters),
the environment's identity, the rollout settings, the simulated user's identity and the group member. Only rollouts
without an error are stored: errored ones (a failed call, a timeout, the time budget) run again next time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.paths import cache_dir


def rollout_store_path() -> Path:
    """Where the pipeline keeps finished rollouts: beside the request cache."""
    return cache_dir() / "rollouts.sqlite"


def rollout_id(row_hash: str, agent: Mapping[str, Any], environment: Mapping[str, Any] | str,
               settings: Mapping[str, Any], member: int) -> str:
    """The id of one rollout: everything that changes what it does (see the module docstring)."""
    payload = {"row_hash": row_hash, "agent": agent, "environment": environment, "settings": settings,
               "member": member}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


class RolloutStore:
    """SQLite-backed and safe for several threads and processes writing at once."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else rollout_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS rollouts (rollout_id TEXT PRIMARY KEY, row TEXT NOT NULL)")
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise EvalInputError(f"the rollout store is corrupt or not an SQLite database ({exc}). Delete it (and "
                                 f"any {self.path.name}-wal / -shm beside it): the next run rolls out again",
                                 file=str(self.path)) from None

    def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored rows among ``ids``, by rollout id."""
        ids = list(dict.fromkeys(ids))
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, row in self._db.execute(
                        f"SELECT rollout_id, row FROM rollouts WHERE rollout_id IN ({marks})", chunk):
                    found[key] = json.loads(row)
        return found

    def put(self, row: Mapping[str, Any]) -> bool:
        """Save one finished rollout row (its ``rollout_id`` is the key); a row with an error is not saved.
        True when saved."""
        if row.get("error") is not None:
            return False
        text = json.dumps(dict(row), ensure_ascii=False, default=str)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO rollouts (rollout_id, row) VALUES (?, ?)",
                             (row["rollout_id"], text))
        return True

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM rollouts").fetchone()[0])

    def close(self) -> None:
        self._db.close()
