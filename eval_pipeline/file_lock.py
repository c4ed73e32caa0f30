"""An exclusive lock between processes on a lock file: the one mechanism that lets processes sharing a state folder
create its stores (the Dagster instance storage, the MLflow SQLite store) one at a time.

The lock is ``flock`` on an open file, so the kernel drops it when its holder dies (even by kill -9). It is not
re-entrant: a process that takes a lock it already holds waits for itself.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, with its folder, when missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
