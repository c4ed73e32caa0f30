"""Many verified runs at once: each program in its own sandbox, ``workers`` at a time, results in input order.

The sandboxes are processes; a thread per worker only starts one and waits for it, so threads are all the pool
needs. Anything unexpected in one run becomes that run's ``error`` result rather than a lost batch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from eval_pipeline.sandbox.check import Check
from eval_pipeline.sandbox.checked import CheckResult, run_checked


class Program(NamedTuple):
    """One sandboxed run: the program's code and, for a verifier, the test that must run to its end after it."""

    code: str
    check: Check | None = None


def run_programs(programs: Sequence[str | Program], *, workers: int | None = None, timeout_s: float = 10.0,
                 memory_mb: int = 512) -> list[CheckResult]:
    """Each program in its own sandbox, ``workers`` (default: the CPU count) at a time; results in input order."""
    run = functools.partial(_run_safely, timeout_s=timeout_s, memory_mb=memory_mb)
    count = max(1, min(workers or os.cpu_count() or 1, len(programs) or 1))
    if count == 1:
        return [run(program) for program in programs]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="sandbox") as pool:
        return list(pool.map(run, programs))


def _run_safely(program: str | Program, timeout_s: float, memory_mb: int) -> CheckResult:
    """``run_checked``, with anything unexpected turned into an ``error`` result rather than a lost batch."""
    code, check = (program, None) if isinstance(program, str) else program
    try:
        return run_checked(code, check=check, timeout_s=timeout_s, memory_mb=memory_mb)
    except Exception as exc:  # the sandbox's own failure, never the program's
        return CheckResult(False, "error", "", f"{type(exc).__name__}: {exc}", 0.0)
