"""A verified run: a program, then optionally its ``Check``, and ``passed`` only when the verdict channel says so.

``passed`` means the program ran to its end without an exception and, with a ``Check``, the test code and
``check(<entry_point>)`` then ran to their end too (HumanEval's harness: any exception, ``SystemExit`` included,
is a failure). The exit status is never trusted for that: ``os._exit(0)`` at import, ``raise SystemExit(0)`` in
the function, ``os._exit`` from a thread or a signal handler, an ``atexit`` hook, an ``exec`` of another program
all exit with 0 and are failures. The package's docstring has the threat model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from eval_pipeline.sandbox import output
from eval_pipeline.sandbox.check import Check, compile_check
from eval_pipeline.sandbox.execution import SandboxFailure, execute
from eval_pipeline.sandbox.limits import Limits
from eval_pipeline.sandbox.outcome import Status, status_of

TAIL_CHARS = 4000
NO_VERDICT = ("sandbox: the program exited with status 0 before it ran to its end (sys.exit, os._exit, a thread, "
              "a signal handler or another program): not a pass\n")


@dataclass(frozen=True)
class CheckResult:
    """How a verified run ended. ``status`` is ``error`` only when the sandbox itself failed, never the program.
    ``stdout_tail`` and ``stderr_tail`` are the last ``TAIL_CHARS`` characters of each."""

    passed: bool
    status: Status
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    isolation: tuple[str, ...] = ()
    """The OS mechanisms in force: rlimits, pids_cgroup, netns, pidns, readonly_fs, no_capabilities."""


def run_checked(code: str, *, check: Check | None = None, timeout_s: float = 10.0, memory_mb: int = 512,
                cwd: Path | None = None) -> CheckResult:
    """Run ``code`` (then ``check``, when given) in the sandbox; never raises for anything the code does.
    ``passed`` only when the harness saw everything run to its end."""
    started = time.perf_counter()
    limits = Limits(timeout_s, memory_mb)
    try:
        test = compile_check(check.test, check.entry_point) if check is not None else None
    except (SyntaxError, ValueError) as exc:  # the test's own fault (ValueError: a null byte), not the program's
        return _sandbox_error(f"the test code does not compile: {exc}", started)
    try:
        run = execute(code, limits, test=test, cwd=cwd, read_output=lambda path: output.tail(path, TAIL_CHARS))
    except SandboxFailure as exc:
        return _sandbox_error(str(exc), started)
    status, stderr = status_of(run), run.stderr
    if status != "passed" and run.returncode == 0 and not run.timed_out:
        stderr = (stderr + NO_VERDICT)[-TAIL_CHARS:]
    return CheckResult(status == "passed", status, run.stdout, stderr, run.duration_s, run.report.isolation)


def _sandbox_error(message: str, started: float) -> CheckResult:
    return CheckResult(False, "error", "", message, time.perf_counter() - started)
