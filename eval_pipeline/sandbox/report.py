"""The bootstrap's report of how the program ended: what isolation was in force, its wait status and CPU time.

The bootstrap writes ``isolation <names>`` once isolated and ``exit <wait status> <cpu s>`` when the program
ended; the report only ever classifies an ending, never a pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Report:
    """``wait_status`` is None when the bootstrap died before the program ended, or never ran it."""

    isolation: tuple[str, ...] = ()
    wait_status: int | None = None
    cpu_s: float = 0.0

    @property
    def exit_code(self) -> int | None:
        """The program's exit status as ``subprocess`` gives it (minus the signal's number when a signal ended it)."""
        return None if self.wait_status is None else os.waitstatus_to_exitcode(self.wait_status)


def read_report(path: Path) -> Report:
    isolation: tuple[str, ...] = ()
    wait_status, cpu_s = None, 0.0
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(" ")
            if key == "isolation":
                isolation = tuple(name for name in value.split(",") if name)
            elif key == "exit":
                status_text, cpu_text = value.split()
                wait_status, cpu_s = int(status_text), float(cpu_text)
    except (OSError, ValueError):
        pass
    return Report(isolation, wait_status, cpu_s)
