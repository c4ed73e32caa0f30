"""Many verified runs at once: each program in its own sandbox, ``workers`` at a time, results in input order.

The sandboxes are processes; a thread per worker only starts one and waits for it, so threads are all the pool
needs. Anything unexpected in one run becomes that run's ``error`` result rather than a lost batch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import NamedTuple

from eval_pipeline.progress import stage_progress
from eval_pipeline.sandbox.check import Check
from eval_pipeline.sandbox.checked import CheckResult, run_checked


class Program(NamedTuple):
    """One sandboxed run: the program's code and, for a verifier, the test that must run to its end after it."""

    code: str
    check: Check | None = None


def run_programs(programs: Sequence[str | Program], *, workers: int | None = None, timeout_s: float = 10.0,
                 memory_mb: int = 512, on_progress: Callable[[int, int], None] | None = None) -> list[CheckResult]:
    """Each program in its own sandbox, ``workers`` (default: the CPU count) at a time; results in input order.
    ``on_progress(done, total)`` (default: the running stage's, ``progress.stage_progress()``) as each ends."""
    report = on_progress if on_progress is not None else stage_progress()
    run = functools.partial(_run_safely, timeout_s=timeout_s, memory_mb=memory_mb)
    count = max(1, min(workers or os.cpu_count() or 1, len(programs) or 1))
    total = len(programs)
    results: list[CheckResult | None] = [None] * total
    if report is not None and total:
        report(0, total)
    if count == 1:
        for index, program in enumerate(programs):
            results[index] = run(program)
            if report is not None:
                report(index + 1, total)
    else:
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="sandbox") as pool:
            futures = {pool.submit(run, program): index for index, program in enumerate(programs)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if report is not None:
                    report(done, total)
    return [result for result in results if result is not None]


def _run_safely(program: str | Program, timeout_s: float, memory_mb: int) -> CheckResult:
    """``run_checked``, with anything unexpected turned into an ``error`` result rather than a lost batch."""
    code, check = (program, None) if isinstance(program, str) else program
    try:
        return run_checked(code, check=check, timeout_s=timeout_s, memory_mb=memory_mb)
    except Exception as exc:  # the sandbox's own failure, never the program's
        return CheckResult(False, "error", "", f"{type(exc).__name__}: {exc}", 0.0)
