"""Waiting for the bootstrap within the time, then killing what is left of its process group.

The group is killed before the leader is reaped, so its id cannot have been reused by then.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time


def wait_then_kill(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for the child to exit, kill what is left of its process group, reap it. True when it timed out."""
    if hasattr(os, "pidfd_open") or hasattr(os, "waitid"):
        timed_out = not _exited_within(proc.pid, max(timeout_s, 0.0))
    else:
        try:
            proc.wait(timeout=max(timeout_s, 0.0))
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
    kill_group(proc.pid)
    proc.wait()
    return timed_out


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of the process group (background children of a finished program, or all on timeout)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _exited_within(pid: int, timeout_s: float) -> bool:
    """Whether the child exits within the time, without reaping it (a pidfd where there is one, else polling)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            return bool(select.select([pidfd], [], [], timeout_s)[0])
        finally:
            os.close(pidfd)
    deadline, delay = time.monotonic() + timeout_s, 0.0005
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.005)
