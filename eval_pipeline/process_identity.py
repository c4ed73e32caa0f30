"""Which host and process a run belongs to, as tags, and whether that process is gone.

Runs executed in-process (Dagster runs of the CLI and SDK, the MLflow runs they log) carry these tags so that a
later process can tell a run whose process died (kill -9, out of memory) from one still running.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

HOST_TAG, PID_TAG = "eval/host", "eval/pid"


def process_tags() -> dict[str, str]:
    """Tags that tie a run to this host and process."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def owner_gone(tags: Mapping[str, str]) -> bool:
    """True when the tags name a process of this host, other than this one, that no longer exists."""
    if tags.get(HOST_TAG) != socket.gethostname():
        return False
    try:
        pid = int(tags.get(PID_TAG) or 0)
    except ValueError:
        return False
    return pid > 0 and pid != os.getpid() and not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
