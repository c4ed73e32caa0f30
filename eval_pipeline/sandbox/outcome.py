"""How a run ended, in one word: passed, failed, timeout, memory, or error (the sandbox's own failure).

``passed`` needs the verdict line and a clean exit; the report (or the exit status) only ever names a failure.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Literal

from eval_pipeline.sandbox.child.boot import BOOT_ERROR
from eval_pipeline.sandbox.execution import Execution
from eval_pipeline.sandbox.report import Report

Status = Literal["passed", "failed", "timeout", "memory", "error"]

_MEMORY_ERROR = re.compile(r"^(\w+\.)*MemoryError\b", re.MULTILINE)


def status_of(run: Execution) -> Status:
    return classify(run.returncode, run.timed_out, run.report, run.stderr, run.limits.cpu_s, run.verdict)


def classify(returncode: int, timed_out: bool, report: Report, stderr: str, cpu_limit_s: int,
             verdict: bool) -> Status:
    """``passed`` needs the verdict line and a clean exit; the report (or the exit status) only names a failure:
    a timeout (the wall clock, SIGXCPU or a SIGKILL at the CPU limit), memory (a MemoryError, or a SIGKILL that was
    neither ours nor the CPU limit's: the kernel's OOM killer), an error (the bootstrap failed), else failed."""
    if timed_out:
        return "timeout"
    if verdict and returncode == 0:
        return "passed"
    if report.wait_status is None:  # the bootstrap died before the program ended, or never ran it
        if returncode == BOOT_ERROR:
            return "error"
        sig, cpu_s = (None if returncode >= 0 else -returncode), 0.0
    else:
        wait_status, cpu_s = report.wait_status, report.cpu_s
        sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
    if _MEMORY_ERROR.search(stderr):
        return "memory"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= cpu_limit_s - 0.5):
        return "timeout"
    if sig == signal.SIGKILL:  # not by us and not for CPU: the kernel's OOM killer
        return "memory"
    return "failed"
