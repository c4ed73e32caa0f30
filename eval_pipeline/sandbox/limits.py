"""The limits a sandboxed program runs under, and the minimal environment it sees.

The bootstrap applies them to the program's process as ``resource`` limits: address space (``memory_mb``), CPU
seconds (the timeout rounded up, plus one), file size (``max_file_bytes``, which also caps what the program can
print: its output goes to files), processes (``max_processes``; the kernel does not apply RLIMIT_NPROC to root,
so for root a ``pids`` cgroup does it where one can be created) and no core dumps. The wall-clock timeout is the
parent's: at it, the whole process group is killed with SIGKILL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

MAX_PROCESSES = 64
MAX_FILE_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Limits:
    """What one run may use: wall-clock seconds, memory in MiB, processes and bytes per file."""

    timeout_s: float
    memory_mb: int
    max_processes: int = MAX_PROCESSES
    max_file_bytes: int = MAX_FILE_BYTES

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, int | float) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {self.timeout_s!r}")
        for name in ("memory_mb", "max_processes", "max_file_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    @property
    def cpu_s(self) -> int:
        """The CPU-time limit: the timeout rounded up, plus a second (the wall clock normally ends a run first)."""
        return math.ceil(self.timeout_s) + 1

    def rlimits(self) -> list[str]:
        """The bootstrap's arguments for them: address space bytes, CPU seconds, processes, file bytes."""
        return [str(self.memory_mb * 2**20), str(self.cpu_s), str(self.max_processes), str(self.max_file_bytes)]


def child_env(work: Path) -> dict[str, str]:
    """A minimal environment: no proxies or credentials, HOME and TMPDIR in the working directory."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
