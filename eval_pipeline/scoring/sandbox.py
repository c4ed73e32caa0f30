"""Running untrusted Python (model-written code) in a child process under OS limits.

What actually contains the code is the operating system:

* ``resource`` limits on the program's process: address space (``memory_mb``), CPU seconds (≈ the timeout),
  file size (``MAX_FILE_BYTES``), processes (``MAX_PROCESSES``; the kernel does not apply it to root) and no
  core dumps;
* a wall-clock timeout, after which the whole process group is killed with SIGKILL;
* where the kernel allows it (root, or unprivileged user namespaces): new network, PID and mount namespaces. The
  network namespace has no usable interface, so no connection leaves the process; the PID namespace makes the
  program the init of its own namespace, so everything it forks dies (and is reaped) with it; in the mount
  namespace every mount except the fresh working directory is remounted read-only;
* for root, a ``pids`` cgroup (v1, or v2 where delegated) caps the number of processes instead of RLIMIT_NPROC;
* every capability dropped (bounding set included) with no_new_privs, so that a program run as root cannot raise
  its limits, remount, leave its cgroup or regain privileges by exec. It still runs as the same user, though:
  files that user can read, it can read.

Whatever of this a host does not allow is skipped silently; ``SandboxResult.isolation`` names what was in force.
Without the namespaces (e.g. macOS, or containers that forbid them) only the limits and the prelude remain.

On top of that a prelude, run in the program's own interpreter before its code, makes ``socket.socket`` raise,
refuses writes, deletes and renames outside the working directory through ``open``/``os``, and refuses
``os.system``/exec/spawn, ``subprocess``, ``os.kill`` and ``setsid``. The prelude is defence in depth and
nothing more: code running in the same interpreter can undo it (``ctypes``, ``posix``, the classes' MRO). It is
not a security boundary; the OS mechanisms above are the real ones. The child's side lives in ``sandbox_child``.

What "passed" means, and why a program cannot claim it
------------------------------------------------------
``passed`` means the program ran to its end without an exception, and with a ``Check`` that the test code and
``check(<entry_point>)`` then ran to their end too (HumanEval's harness: any exception, ``SystemExit`` included, is a
failure). The exit status is never trusted for that: ``os._exit(0)`` at import, ``raise SystemExit(0)`` in the
function, ``os._exit`` from a thread or a signal handler, an ``atexit`` hook, an ``exec`` of another program all exit
with 0 and are failures. The verdict travels on a channel of its own:

* the parent draws a fresh random token for each run and hands it to the bootstrap on a pipe as its stdin (never in
  argv, the environment or a file); the bootstrap reads it before anything else and points stdin at /dev/null;
* the program's process writes ``passed <token>`` to a verdict pipe only from the harness's code, after the program
  (and the test) returned normally, through functions it captured before the program's first line;
* the parent counts a pass only when that exact line is on the verdict pipe *and* the bootstrap exited with 0 within
  the time. Anything else the program writes there, or to any descriptor it finds through /proc/self/fd, or to
  stdout, or in the report (which is closed in its process and only ever classifies failures), cannot be the line:
  the program does not know the token. Killing the bootstrap, or itself, gives a failure.

The threat model, and where it stops. The program is arbitrary Python that wants a pass without passing: it may exit
in any way, spray descriptors, replace ``sys.stdout``, ``builtins``, ``exec``, ``os.write``, ``os._exit`` or
``sys.exit``, define names that shadow builtins, fork, start threads, send signals, add audit hooks, end with a
dangling decorator or an open string meant to swallow the test code, search the interpreter from Python for the
verdict line (every frame's locals, everything ``gc`` lists and what it refers to, in any thread, at any time) and,
on Python 3.13, rewrite the harness frames' locals. None of that gives a pass:

* the verdict line exists, while the program can run, only on a harness frame's value stack, which neither
  ``frame.f_locals`` nor ``gc`` exposes, and the bootstrap that read the token is not dumpable (its memory is
  closed to the program);
* the harness's path from the program's first line to the verdict uses only what it pushed or bound before: the
  functions it calls, ``exec`` and the test's code object sit on value stacks, not in locals a program could rewrite;
* the test is compiled in the parent (``check_program``) apart from the program, so it cannot be swallowed, with
  ``check``'s body inline, so no hook can swap ``check`` between its definition and its call; it runs in its own
  namespace with the builtins as they were before the program ran;
* trace and profile functions and ``sys.monitoring`` (whose callbacks can jump over lines) are refused by the
  prelude, and the originals are dropped so that ``gc`` cannot return them.

What the program can still do to the test is deceive it from inside its own process (an object whose ``==`` is
always true, a patched ``math``, a helper the test uses rewritten while it runs): out of scope, as in the reference
HumanEval harness, whose own result list is even reachable through ``gc``. What a same-process harness cannot stop
at all is code that reads or rewrites the interpreter's raw memory (ctypes, /proc/self/mem, C helper modules such
as ``_testcapi``): whatever the harness can do, such code can do too. The OS boundary above still holds against it.
"""

from __future__ import annotations

import contextlib
import functools
import keyword
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from eval_pipeline.scoring.check_program import compile_check
from eval_pipeline.scoring.sandbox_child import BOOT_ERROR

Status = Literal["passed", "failed", "timeout", "memory", "error"]

MAX_PROCESSES = 64
MAX_FILE_BYTES = 8 * 2**20
TAIL_CHARS = 4000
_CHILD_DIR = str(Path(__file__).resolve().parent)
_BOOTSTRAP = (f"import sys; sys.path.insert(0, {_CHILD_DIR!r}); import sandbox_child; del sys.path[0]; "
              "sandbox_child.main(sys.argv[1:])")
_MEMORY_ERROR = re.compile(r"^(\w+\.)*MemoryError\b", re.MULTILINE)
MAX_VERDICT_BYTES = 1 << 20
NO_VERDICT = ("sandbox: the program exited with status 0 before it ran to its end (sys.exit, os._exit, a thread, "
              "a signal handler or another program): not a pass\n")


@dataclass(frozen=True)
class Check:
    """A test to run after the program, HumanEval-style: ``test`` (defining ``check``), then ``check(entry_point)``
    (with ``check``'s body inline: ``check_program``)."""

    test: str
    entry_point: str

    def __post_init__(self) -> None:
        if not self.entry_point.isidentifier() or keyword.iskeyword(self.entry_point):
            raise ValueError(f"entry_point {self.entry_point!r} is not a Python identifier")


@dataclass(frozen=True)
class SandboxResult:
    """How a program ended. ``status`` is ``error`` only when the sandbox itself failed, never the program."""

    passed: bool
    status: Status
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    isolation: tuple[str, ...] = ()
    """The OS mechanisms in force: rlimits, pids_cgroup, netns, pidns, readonly_fs, no_capabilities."""


def run_python(code: str, *, check: Check | None = None, timeout_s: float = 10.0, memory_mb: int = 512,
               cwd: Path | None = None) -> SandboxResult:
    """Run ``code`` (then ``check``, when given) with ``python -I`` (isolated mode) in a fresh temporary working
    directory, created under ``cwd`` when given (else the system temp dir) and removed afterwards; never raises for
    anything the code does. ``passed`` only when the harness saw everything run to its end (module docstring)."""
    started = time.perf_counter()
    cgroup: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        root = Path(tempfile.mkdtemp(prefix="eval-sandbox-", dir=cwd)).resolve()
    except OSError as exc:
        return _infrastructure_error(f"cannot create the sandbox directory: {exc}", started)
    fds: list[int] = []
    try:
        work = root / "work"
        work.mkdir()
        (root / "program.py").write_text(code, encoding="utf-8")
        if check is not None:
            (root / "test.code").write_bytes(compile_check(check.test, check.entry_point))
        token = _new_token()
        token_in, token_out = _pipe(fds)
        os.write(token_out, token)  # far below a pipe's buffer: never blocks
        _close(token_out, fds)
        verdict_in, verdict_out = _pipe(fds)
        cgroup = _create_pids_cgroup()
        cpu_s = math.ceil(timeout_s) + 1
        args = [str(root / "program.py"), str(root / "test.code") if check else "", str(verdict_out), str(work),
                str(root / "report"), str(memory_mb * 2**20), str(cpu_s), str(MAX_PROCESSES), str(MAX_FILE_BYTES),
                str(cgroup or "")]
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _BOOTSTRAP, *args], cwd=work,
                                    env=_child_env(work), stdin=token_in, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True, pass_fds=(verdict_out,))
            for fd in (token_in, verdict_out):  # the child has its own copies
                _close(fd, fds)
            timed_out = _wait(proc, timeout_s - (time.perf_counter() - started))
        duration = time.perf_counter() - started
        verdict = b"passed " + token + b"\n" in _read_verdict(verdict_in)
        report = _read_report(root / "report")
        stdout, stderr = _tail(root / "stdout"), _tail(root / "stderr")
        status = _classify(proc.returncode, timed_out, report, stderr, cpu_s, verdict)
        if status != "passed" and proc.returncode == 0 and not timed_out:
            stderr = (stderr + NO_VERDICT)[-TAIL_CHARS:]
        isolation = tuple(report.get("isolation", ()))
        return SandboxResult(status == "passed", status, stdout, stderr, duration, isolation)
    except (SyntaxError, ValueError) as exc:  # the test's own fault (ValueError: a null byte), not the program's
        return _infrastructure_error(f"the test code does not compile: {exc}", started)
    except OSError as exc:
        return _infrastructure_error(f"sandbox failure: {exc}", started)
    finally:
        for fd in fds:
            os.close(fd)
        if proc is not None and proc.returncode is None:  # interrupted while waiting: leave nothing running
            _kill_group(proc.pid)
            proc.wait()
        if cgroup is not None:
            _destroy_cgroup(cgroup)
        shutil.rmtree(root, ignore_errors=True)


def fork_limit_enforced() -> bool:
    """Whether the host can cap a program's process count: RLIMIT_NPROC for non-root users, a cgroup for root."""
    return os.geteuid() != 0 or _pids_cgroup_parent() is not None


# ---- the parent's side ----------------------------------------------------------------------------------------


def _child_env(work: Path) -> dict[str, str]:
    """A minimal environment: no proxies or credentials, HOME and TMPDIR in the working directory."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _new_token() -> bytes:
    """The run's secret: 128 random bits, as hex."""
    return os.urandom(16).hex().encode()


def _pipe(fds: list[int]) -> tuple[int, int]:
    read, write = os.pipe()
    fds += (read, write)
    return read, write


def _close(fd: int, fds: list[int]) -> None:
    fds.remove(fd)
    os.close(fd)


def _read_verdict(fd: int) -> bytes:
    """What is on the verdict pipe now (the writers are gone or killed); never waits for an escaped writer."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < MAX_VERDICT_BYTES:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for the child to exit, kill what is left of its process group, reap it. True when it timed out.

    The group is killed before the leader is reaped, so its id cannot have been reused by then.
    """
    if hasattr(os, "pidfd_open") or hasattr(os, "waitid"):
        timed_out = not _exited_within(proc.pid, max(timeout_s, 0.0))
    else:
        try:
            proc.wait(timeout=max(timeout_s, 0.0))
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
    _kill_group(proc.pid)
    proc.wait()
    return timed_out


def _exited_within(pid: int, timeout_s: float) -> bool:
    """Whether the child exits within the time, without reaping it (a pidfd where there is one, else polling)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            return bool(select.select([pidfd], [], [], timeout_s)[0])
        finally:
            os.close(pidfd)
    deadline, delay = time.monotonic() + timeout_s, 0.0005
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.005)


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of the process group (background children of a finished program, or all on timeout)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _classify(returncode: int, timed_out: bool, report: dict[str, Any], stderr: str, cpu_limit_s: int,
              verdict: bool) -> Status:
    """``passed`` needs the verdict line and a clean exit; the report (or the exit status) only names a failure."""
    if timed_out:
        return "timeout"
    if verdict and returncode == 0:
        return "passed"
    if "wait_status" not in report:  # the bootstrap died before the program ended, or never ran it
        if returncode == BOOT_ERROR:
            return "error"
        sig, cpu_s = (None if returncode >= 0 else -returncode), 0.0
    else:
        wait_status, cpu_s = int(report["wait_status"]), float(report["cpu_s"])
        sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
    if _MEMORY_ERROR.search(stderr):
        return "memory"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= cpu_limit_s - 0.5):
        return "timeout"
    if sig == signal.SIGKILL:  # not by us and not for CPU: the kernel's OOM killer
        return "memory"
    return "failed"


def _infrastructure_error(message: str, started: float) -> SandboxResult:
    return SandboxResult(False, "error", "", message, time.perf_counter() - started)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 4 * TAIL_CHARS))
            return handle.read().decode("utf-8", errors="replace")[-TAIL_CHARS:]
    except OSError:
        return ""


def _read_report(path: Path) -> dict[str, Any]:
    """The bootstrap's report: ``isolation <names>`` once isolated, ``exit <wait status> <cpu s>`` at the end."""
    report: dict[str, Any] = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(" ")
            if key == "isolation":
                report["isolation"] = [name for name in value.split(",") if name]
            elif key == "exit":
                wait_status, cpu_s = value.split()
                report.update(wait_status=int(wait_status), cpu_s=float(cpu_s))
    except (OSError, ValueError):
        pass
    return report


@functools.cache
def _pids_cgroup_parent() -> Path | None:
    """A cgroup (v1 ``pids`` hierarchy, or v2 with ``pids`` delegated) this process may create children in."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return None
    try:
        own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
        mounts = _mounts()
    except (OSError, ValueError):
        return None
    for mountpoint, fstype, superopts in ((m[0], m[2], m[3]) for m in mounts):
        if fstype == "cgroup" and "pids" in superopts.split(","):
            path = next((p for c, p in own.items() if "pids" in c.split(",")), None)
        elif fstype == "cgroup2":
            path = own.get("")
        else:
            continue
        if path is None:
            continue
        candidate = Path(mountpoint) / path.lstrip("/")
        if fstype == "cgroup2" and not _has_pids_controller(candidate):
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return None


def _has_pids_controller(cgroup: Path) -> bool:
    try:
        return "pids" in (cgroup / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False


def _create_pids_cgroup() -> Path | None:
    parent = _pids_cgroup_parent()
    if parent is None:
        return None
    path = parent / f"eval-sandbox-{uuid.uuid4().hex[:12]}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(MAX_PROCESSES))
        return path
    except OSError:
        _destroy_cgroup(path)
        return None


def _destroy_cgroup(path: Path) -> None:
    """Kill every process still in the cgroup, then remove it."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _mounts() -> list[tuple[str, list[str], str, str]]:
    """(mount point, mount options, fs type, super options) for each line of /proc/self/mountinfo."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        mountpoint = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        result.append((mountpoint, fields[5].split(","), tail[0], tail[2] if len(tail) > 2 else ""))
    return result
