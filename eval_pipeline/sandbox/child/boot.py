"""The bootstrap: read the token, isolate, then fork the program under its limits, wait for it, report how it ended.

Started by the parent (``eval_pipeline.sandbox.execution``) as ``python -I -S -c '... from child import boot;
boot.main(sys.argv[1:])' ARGS``. It writes two lines to its report file: ``isolation <names>`` before the program
starts and ``exit <wait status> <cpu seconds>`` after. The report is closed in the program's process before its
code runs, and only ever says how the program ended, never whether it passed (that is the verdict channel's job).
"""

from __future__ import annotations

import os
import signal

from .channel import VERDICT_PREFIX, read_token
from .isolation import drop_capabilities, isolate, set_limits, try_write
from .runner import run_program

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing itself costs every run a few milliseconds
    from typing import NoReturn

BOOT_ERROR = 125  # the exit code when the bootstrap fails before running the program


def main(argv: list[str]) -> NoReturn:
    """Read the token, isolate, then fork the program under its limits, wait for it and report how it ended."""
    (program, test_path, stdin_path, verdict_fd, work, report_path, memory_bytes, cpu_s, max_processes,
     max_file_bytes, cgroup) = argv
    try:
        box = [VERDICT_PREFIX + read_token(stdin_path) + b"\n"]  # no local of this frame holds it once popped
        source, test = _read(program), None
        if test_path:  # marshal data of (the test's text, its compiled code), loaded in the program's process
            with open(test_path, "rb") as handle:
                test = handle.read()
        report = open(report_path, "w", encoding="utf-8")  # noqa: SIM115 — before the filesystem turns read-only
        isolation = ["rlimits"]
        if cgroup and try_write(f"{cgroup}/cgroup.procs", str(os.getpid())):
            isolation.append("pids_cgroup")
        isolation += isolate(work)
        if drop_capabilities():
            isolation.append("no_capabilities")
        report.write(f"isolation {','.join(isolation)}\n")
        report.flush()
        pid = os.fork()
    except BaseException as exc:  # any failure before the program runs is the sandbox's
        os.write(2, f"sandbox bootstrap failed: {exc!r}\n".encode())
        os._exit(BOOT_ERROR)
    if pid == 0:
        report.close()  # the program gets no handle on the report
        set_limits({"RLIMIT_AS": int(memory_bytes), "RLIMIT_CPU": int(cpu_s), "RLIMIT_FSIZE": int(max_file_bytes),
                    "RLIMIT_NPROC": int(max_processes), "RLIMIT_CORE": 0})
        run_program(source, test, work, int(verdict_fd), box)
    del box
    os.close(int(verdict_fd))
    _, wait_status, usage = os.wait4(pid, 0)
    report.write(f"exit {wait_status} {usage.ru_utime + usage.ru_stime}\n")
    report.close()
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(wait_status))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()
