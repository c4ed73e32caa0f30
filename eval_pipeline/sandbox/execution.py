"""One run of untrusted Python in a child process: the working directory, the pipes, the bootstrap, the wait.

``execute`` lays out a fresh directory (``program.py``, the compiled test, the program's stdin and files, and
``work/``, the only place it may write), starts ``python -I -S`` on the bootstrap (``child.boot``) in a new
session with a minimal environment, hands it the run's token on stdin and the verdict pipe's write end, waits
for it within the timeout, kills what is left of its process group and gathers how it ended. It never interprets
the ending: the verifier (``checked``) and the general API (``program``) do, each its own way. Whatever the
program does, ``execute`` returns; only a sandbox that cannot run at all raises ``SandboxFailure``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from eval_pipeline.sandbox import verdict
from eval_pipeline.sandbox.cgroup import create_pids_cgroup, destroy_cgroup
from eval_pipeline.sandbox.limits import Limits, child_env
from eval_pipeline.sandbox.process import kill_group, wait_then_kill
from eval_pipeline.sandbox.report import Report, read_report

SANDBOX_DIR = str(Path(__file__).resolve().parent)
BOOTSTRAP = (f"import sys; sys.path.insert(0, {SANDBOX_DIR!r}); from child import boot; del sys.path[0]; "
             "boot.main(sys.argv[1:])")


class SandboxFailure(Exception):
    """The sandbox itself could not run the program (never anything the program did)."""


@dataclass(frozen=True)
class Execution:
    """How the bootstrap ended: its exit status (``subprocess``'s convention), whether the wall clock ran out,
    whether this run's verdict line was on the verdict pipe, its report, and the program's output as read back."""

    returncode: int
    timed_out: bool
    verdict: bool
    report: Report
    stdout: str
    stderr: str
    duration_s: float
    limits: Limits


def execute(code: str, limits: Limits, *, test: bytes | None = None, stdin: str = "",
            files: Mapping[str, str] | None = None, cwd: Path | None = None,
            read_output: Callable[[Path], str]) -> Execution:
    """Run ``code`` (then ``test``, ``marshal`` data from ``check.compile_check``) in a fresh temporary directory,
    created under ``cwd`` when given (else the system temp dir) and removed afterwards. ``files`` (relative path →
    text) are written into the working directory first; a path that would leave it raises ValueError. Text that
    UTF-8 cannot encode (lone surrogates) is written with ``?`` in its place."""
    started = time.perf_counter()
    relative = _relative_paths(files or {})
    try:
        root = Path(tempfile.mkdtemp(prefix="eval-sandbox-", dir=cwd)).resolve()
    except OSError as exc:
        raise SandboxFailure(f"cannot create the sandbox directory: {exc}") from exc
    fds: list[int] = []
    cgroup: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        work = root / "work"
        work.mkdir()
        for path, text in relative.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_bytes(_utf8(text))
        (root / "program.py").write_bytes(_utf8(code))
        if test is not None:
            (root / "test.code").write_bytes(test)
        if stdin:
            (root / "stdin").write_bytes(_utf8(stdin))
        token = verdict.new_token()
        token_in, token_out = _pipe(fds)
        os.write(token_out, token)  # far below a pipe's buffer: never blocks
        _close(token_out, fds)
        verdict_in, verdict_out = _pipe(fds)
        cgroup = create_pids_cgroup(limits.max_processes)
        args = [str(root / "program.py"), str(root / "test.code") if test is not None else "",
                str(root / "stdin") if stdin else "", str(verdict_out), str(work), str(root / "report"),
                *limits.rlimits(), str(cgroup or "")]
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", BOOTSTRAP, *args], cwd=work,
                                    env=child_env(work), stdin=token_in, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True, pass_fds=(verdict_out,))
            for fd in (token_in, verdict_out):  # the child has its own copies
                _close(fd, fds)
            timed_out = wait_then_kill(proc, limits.timeout_s - (time.perf_counter() - started))
        duration = time.perf_counter() - started
        passed = verdict.verdict_line(token) in verdict.read_verdict(verdict_in)
        return Execution(proc.returncode, timed_out, passed, read_report(root / "report"),
                         read_output(root / "stdout"), read_output(root / "stderr"), duration, limits)
    except OSError as exc:
        raise SandboxFailure(f"sandbox failure: {exc}") from exc
    finally:
        for fd in fds:
            os.close(fd)
        if proc is not None and proc.returncode is None:  # interrupted while waiting: leave nothing running
            kill_group(proc.pid)
            proc.wait()
        if cgroup is not None:
            destroy_cgroup(cgroup)
        shutil.rmtree(root, ignore_errors=True)


def _relative_paths(files: Mapping[str, str]) -> dict[PurePosixPath, str]:
    """The files' paths, each relative and inside the working directory (ValueError naming one that is not)."""
    checked = {}
    for name, text in files.items():
        path = PurePosixPath(name)
        if not name or path.is_absolute() or ".." in path.parts or path == PurePosixPath("."):
            raise ValueError(f"sandbox file {name!r} must be a relative path inside the working directory")
        if not isinstance(text, str):
            raise ValueError(f"sandbox file {name!r} must be text, not {type(text).__name__}")
        checked[path] = text
    return checked


def _utf8(text: str) -> bytes:
    """UTF-8, with ``?`` for what has no encoding (a lone surrogate, which no Python source can hold either)."""
    return text.encode("utf-8", errors="replace")


def _pipe(fds: list[int]) -> tuple[int, int]:
    read, write = os.pipe()
    fds += (read, write)
    return read, write


def _close(fd: int, fds: list[int]) -> None:
    fds.remove(fd)
    os.close(fd)
