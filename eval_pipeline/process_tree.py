"""Run a child command as the head of its own process group and take its whole tree down on a signal.

``run_supervised(command)`` starts ``command`` in a new session (its own process group, so a terminal's Ctrl-C
reaches only this process), waits for it, and on SIGINT, SIGTERM or SIGHUP asks the child to stop (SIGINT for
SIGINT, SIGTERM otherwise: ``dagster dev`` then stops its webserver, daemon and code servers). Whatever of the tree
(the child, anything in its process group, any descendant seen while it ran, even one that left the group) still
lives after ``grace_s``, or ``kill_after_s`` after the child itself ended, gets SIGTERM, then SIGKILL after
``kill_after_s``; a second signal skips the grace period. A child that ends by itself has what it left behind
stopped the same way. The return value is the child's exit status, or ``128 + signum`` when a signal stopped it
(130 for SIGINT, 143 for SIGTERM), as a shell reports it. Linux only (it reads ``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 75.0  # `dagster dev` waits up to 60 s for its webserver and daemon before it kills them
KILL_AFTER_S = 5.0
POLL_S = 0.2
SCAN_S = 2.0  # how often a running child's tree is recorded
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    """A process by id and start time (clock ticks since boot), so that a reused pid is never taken for it."""

    pid: int
    start: int


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` this module needs."""

    pid: int
    state: str
    ppid: int
    pgid: int
    start: int


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """``/proc/<pid>/stat``, or None when the process is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]), start=int(rest[19]))


def all_stats(proc: Path = PROC) -> list[ProcStat]:
    """Every process of this host (those that vanish while being read are left out)."""
    stats = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and (stat := read_stat(int(entry.name), proc)) is not None:
            stats.append(stat)
    return stats


def tree(root: int, proc: Path = PROC) -> set[ProcessId]:
    """``root``'s living descendants, plus every living member of its process group (``root`` excluded)."""
    stats = [stat for stat in all_stats(proc) if stat.state != "Z"]
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    found = {ProcessId(stat.pid, stat.start) for stat in stats if stat.pgid == root and stat.pid != root}
    visited, pending = {root}, [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child.pid not in visited:
                visited.add(child.pid)
                found.add(ProcessId(child.pid, child.start))
                pending.append(child.pid)
    return found


def alive(process: ProcessId, proc: Path = PROC) -> bool:
    """Whether this very process (same pid and start time) still runs; a zombie counts as gone."""
    stat = read_stat(process.pid, proc)
    return stat is not None and stat.start == process.start and stat.state != "Z"


@dataclass
class _Signals:
    """The stop signals received so far, recorded by a handler that does nothing else."""

    received: list[int] = field(default_factory=list)

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)


@contextlib.contextmanager
def _recording(signals: _Signals) -> Iterator[None]:
    previous = {sig: signal.signal(sig, signals.handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_supervised(command: Sequence[str], *, grace_s: float = GRACE_S, kill_after_s: float = KILL_AFTER_S,
                   on_stop: Callable[[int], None] | None = None) -> int:
    """Runs ``command`` until it exits or a stop signal arrives; then stops its whole tree (see the module doc)."""
    signals = _Signals()
    with _recording(signals):
        child = subprocess.Popen(list(command), start_new_session=True)
        seen: set[ProcessId] = set()
        next_scan = 0.0
        while child.poll() is None and not signals.received:
            if time.monotonic() >= next_scan:  # descendants that might leave the group before the stop
                seen |= tree(child.pid)
                next_scan = time.monotonic() + SCAN_S
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=POLL_S)
        if not signals.received:  # the child ended by itself: still end what it left behind
            _stop(child, seen, None, signals, 0.0, kill_after_s)
            return child.returncode if child.returncode >= 0 else 128 - child.returncode  # killed: as a shell says
        first = signals.received[0]
        if on_stop is not None:
            on_stop(first)
        _stop(child, seen, first, signals, grace_s, kill_after_s)
    return 128 + first


def _stop(child: subprocess.Popen[bytes], seen: set[ProcessId], sig: int | None, signals: _Signals,
          grace_s: float, kill_after_s: float) -> None:
    """Asks the child to stop and waits ``grace_s`` (``kill_after_s`` once the child is gone, cut short by a second
    signal) for the whole tree to end, then sends the rest SIGTERM, then SIGKILL."""
    pgid = child.pid  # start_new_session: the child leads its own group
    seen |= tree(child.pid)
    if sig is not None and child.poll() is None:
        child.send_signal(signal.SIGINT if sig == signal.SIGINT else signal.SIGTERM)  # both: dagster dev's clean stop
    stops_before = 0 if sig is None else 1  # any signal beyond these cuts the grace period short
    if _wait(child, pgid, seen, grace_s, kill_after_s, lambda: len(signals.received) > stops_before):
        return
    for escalation in (signal.SIGTERM, signal.SIGKILL):
        seen |= tree(pgid)
        _signal_all(pgid, seen, escalation)
        if _wait(child, pgid, seen, kill_after_s, kill_after_s, lambda: False):
            return


def _wait(child: subprocess.Popen[bytes], pgid: int, seen: set[ProcessId], timeout_s: float, orphan_s: float,
          interrupted: Callable[[], bool]) -> bool:
    """True once the child is reaped and nothing of its tree or group lives; False after ``timeout_s``, or
    ``orphan_s`` after the child ended while others of its tree still live, or when ``interrupted()``."""
    deadline = time.monotonic() + timeout_s
    orphans_seen = False
    while True:
        seen |= tree(pgid)
        if child.poll() is not None:
            if not any(alive(process) for process in seen):
                return True
            if not orphans_seen:
                orphans_seen, deadline = True, min(deadline, time.monotonic() + orphan_s)
        if time.monotonic() >= deadline or interrupted():
            return False
        if child.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=POLL_S)
        else:
            time.sleep(POLL_S)


def _signal_all(pgid: int, processes: set[ProcessId], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for process in processes:
        if alive(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, sig)
