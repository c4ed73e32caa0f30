"""A ``pids`` cgroup per run, for root: the kernel does not apply RLIMIT_NPROC to root, a cgroup's ``pids.max``
caps its processes instead (cgroup v1's ``pids`` hierarchy, or v2 where the controller is delegated to us).

The bootstrap moves itself into the run's cgroup before it forks the program; afterwards every process still in it
is killed and the cgroup removed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path


def fork_limit_enforced() -> bool:
    """Whether the host can cap a program's process count: RLIMIT_NPROC for non-root users, a cgroup for root."""
    return os.geteuid() != 0 or _pids_cgroup_parent() is not None


def create_pids_cgroup(max_processes: int) -> Path | None:
    """A fresh cgroup allowing ``max_processes`` processes, or None where none can be created."""
    parent = _pids_cgroup_parent()
    if parent is None:
        return None
    path = parent / f"eval-sandbox-{uuid.uuid4().hex[:12]}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(max_processes))
        return path
    except OSError:
        destroy_cgroup(path)
        return None


@functools.cache
def _pids_cgroup_parent() -> Path | None:
    """A cgroup (v1 ``pids`` hierarchy, or v2 with ``pids`` delegated) this process may create children in."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return None
    try:
        own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
        mounts = _mounts()
    except (OSError, ValueError):
        return None
    for mountpoint, fstype, superopts in ((m[0], m[2], m[3]) for m in mounts):
        if fstype == "cgroup" and "pids" in superopts.split(","):
            path = next((p for c, p in own.items() if "pids" in c.split(",")), None)
        elif fstype == "cgroup2":
            path = own.get("")
        else:
            continue
        if path is None:
            continue
        candidate = Path(mountpoint) / path.lstrip("/")
        if fstype == "cgroup2" and not _has_pids_controller(candidate):
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return None


def _has_pids_controller(cgroup: Path) -> bool:
    try:
        return "pids" in (cgroup / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False


def destroy_cgroup(path: Path) -> None:
    """Kill every process still in the cgroup, then remove it."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _mounts() -> list[tuple[str, list[str], str, str]]:
    """(mount point, mount options, fs type, super options) for each line of /proc/self/mountinfo."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        mountpoint = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        result.append((mountpoint, fields[5].split(","), tail[0], tail[2] if len(tail) > 2 else ""))
    return result
