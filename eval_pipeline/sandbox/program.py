"""The general API: run untrusted Python (an agent's tool call, an environment's helper) and say how it went.

``run_python`` runs the code in the same sandbox as the verifier (a fresh temporary working directory, the limits
of ``Limits``, the network, PID and read-only mount namespaces where the host allows them, no capabilities, the
prelude) with ``stdin`` as its standard input and ``files`` written into its working directory, and returns its
output, each stream cut to ``max_output_chars`` characters (``MAX_OUTPUT_CHARS`` by default: the first and the
last half, around a line saying how much was cut).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eval_pipeline.sandbox import output
from eval_pipeline.sandbox.execution import SandboxFailure, execute
from eval_pipeline.sandbox.limits import Limits
from eval_pipeline.sandbox.outcome import status_of

MAX_OUTPUT_CHARS = 10_000


@dataclass(frozen=True)
class ProgramResult:
    """How a program ended.

    ``exit_code``: its exit status (0 on success, 1 after an uncaught exception, ``n`` for ``sys.exit(n)``, minus
    the signal's number when a signal ended it); None when it timed out or the sandbox failed. ``timed_out``: it
    ran past ``timeout_s`` of wall-clock time or its CPU limit. ``error``: the sandbox's own failure (it could not
    run the program), never the program's. ``memory_exceeded``: it ran out of its ``memory_mb`` (a MemoryError, or
    the kernel killed it). ``completed``: it ran to its end without an exception, as seen on the verdict channel
    (an exit status of 0 alone does not say that: ``os._exit(0)`` also gives it)."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool = False
    error: str | None = None
    memory_exceeded: bool = False
    completed: bool = False
    duration_s: float = 0.0
    isolation: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the program exited with status 0 in time."""
        return self.exit_code == 0 and not self.timed_out and self.error is None


def run_python(code: str, *, stdin: str = "", timeout_s: float, memory_mb: int,
               files: Mapping[str, str] | None = None, max_output_chars: int = MAX_OUTPUT_CHARS,
               cwd: Path | None = None) -> ProgramResult:
    """Run ``code`` as ``__main__`` in the sandbox; never raises for anything the code does. ``files`` maps paths
    relative to the working directory (its current directory) to their text. ValueError for limits that are not
    positive or a file path that leaves the working directory (the caller's mistakes, not the program's)."""
    if max_output_chars < 1:
        raise ValueError(f"max_output_chars must be at least 1, not {max_output_chars!r}")
    started = time.perf_counter()
    limits = Limits(timeout_s, memory_mb)
    try:
        run = execute(code, limits, stdin=stdin, files=files, cwd=cwd,
                      read_output=lambda path: output.head_and_tail(path, max_output_chars))
    except SandboxFailure as exc:
        return ProgramResult("", "", None, error=str(exc), duration_s=time.perf_counter() - started)
    status = status_of(run)
    if status == "error":
        return ProgramResult(run.stdout, run.stderr, None, error=f"the sandbox could not start: {run.stderr.strip()}",
                             duration_s=run.duration_s, isolation=run.report.isolation)
    timed_out = status == "timeout"
    exit_code = None if timed_out else run.report.exit_code
    if exit_code is None and not timed_out:  # the bootstrap died without a report: its own status is all there is
        exit_code = run.returncode
    return ProgramResult(run.stdout, run.stderr, exit_code, timed_out=timed_out, memory_exceeded=status == "memory",
                         completed=status == "passed", duration_s=run.duration_s, isolation=run.report.isolation)
