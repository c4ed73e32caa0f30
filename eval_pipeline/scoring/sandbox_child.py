"""The child's side of the sandbox: isolate, apply the limits, run the program, report how it ended.

Started by ``sandbox.run_python`` as ``python -I -S -c 'import sandbox_child ...' ARGS``. It imports only the
standard library, and as little of it as it can, because every run pays for its start-up. It writes two lines to
its report file: ``isolation <names>`` before the program starts and ``exit <wait status> <cpu seconds>`` after.
The report is closed in the program's process before its code runs, and only ever says how the program ended,
never whether it passed.

Whether it passed travels on its own channel (see ``sandbox``'s docstring for the threat model): the run's token
arrives on stdin, is read before anything else and stdin becomes /dev/null; the program's process writes
``passed <token>`` to the verdict pipe from ``_run_program``, only after the program and its test have run to their
end, with functions it captured before the program's first line, and holds the line only on that frame's value
stack meanwhile.
"""

from __future__ import annotations

import os
import resource
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing itself costs every run a few milliseconds
    from typing import Any, NoReturn

BOOT_ERROR = 125  # the exit code when the bootstrap fails before running the program

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 1 << 14, 1 << 18
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _CAPABILITY_VERSION_3 = 4, 24, 38, 0x20080522
_MOUNT_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}


def main(argv: list[str]) -> NoReturn:
    """Read the token, isolate, then fork the program under its limits, wait for it and report how it ended."""
    (program, test_path, verdict_fd, work, report_path, memory_bytes, cpu_s, max_processes, max_file_bytes,
     cgroup) = argv
    try:
        box = [b"passed " + _read_token() + b"\n"]  # no local of this frame holds it once popped
        source, test = _read(program), None
        if test_path:  # marshal data of (the test's text, its compiled code), loaded in the program's process
            with open(test_path, "rb") as handle:
                test = handle.read()
        report = open(report_path, "w", encoding="utf-8")  # noqa: SIM115 — before the filesystem turns read-only
        isolation = ["rlimits"]
        if cgroup and _try_write(f"{cgroup}/cgroup.procs", str(os.getpid())):
            isolation.append("pids_cgroup")
        isolation += _isolate(work)
        if _drop_capabilities():
            isolation.append("no_capabilities")
        report.write(f"isolation {','.join(isolation)}\n")
        report.flush()
        pid = os.fork()
    except BaseException as exc:  # any failure before the program runs is the sandbox's
        os.write(2, f"sandbox bootstrap failed: {exc!r}\n".encode())
        os._exit(BOOT_ERROR)
    if pid == 0:
        report.close()  # the program gets no handle on the report
        _set_limits({"RLIMIT_AS": int(memory_bytes), "RLIMIT_CPU": int(cpu_s), "RLIMIT_FSIZE": int(max_file_bytes),
                     "RLIMIT_NPROC": int(max_processes), "RLIMIT_CORE": 0})
        _run_program(source, test, work, int(verdict_fd), box)
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


def _read_token() -> bytes:
    """The run's token from stdin (a pipe the parent filled and closed); stdin is /dev/null afterwards."""
    token = os.read(0, 256).strip()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if len(token) < 32:
        raise RuntimeError("no verdict token on stdin")
    return token


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _isolate(work: str) -> list[str]:
    """Enter new network, PID and mount namespaces where the kernel allows; the names of those entered."""
    if not sys.platform.startswith("linux"):
        return []
    user = _CLONE_NEWUSER if os.geteuid() != 0 else 0  # unprivileged: only inside a user namespace of our own
    uid, gid = os.geteuid(), os.getegid()
    mount_ns = os.stat("/proc/self/ns/mnt").st_ino
    for flags in (_CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID, _CLONE_NEWNET | _CLONE_NEWPID, _CLONE_NEWNET):
        if _unshare(flags | user):
            break
    else:
        return []
    if user:  # map our own ids, so that files can still be created in the working directory
        _try_write("/proc/self/setgroups", "deny")
        _try_write("/proc/self/uid_map", f"{uid} {uid} 1")
        _try_write("/proc/self/gid_map", f"{gid} {gid} 1")
    entered = ["netns"] + (["pidns"] if flags & _CLONE_NEWPID else [])
    # never touch a mount unless we are certainly in a mount namespace of our own
    if flags & _CLONE_NEWNS and os.stat("/proc/self/ns/mnt").st_ino != mount_ns and _readonly_outside(work):
        entered.append("readonly_fs")
    return entered


def _drop_capabilities() -> bool:
    """Give up every capability for good (effective, permitted, inheritable and the bounding set) and set
    no_new_privs: root then can no longer raise its limits, remount, leave its cgroup or regain them by exec.
    Also not dumpable: without CAP_SYS_PTRACE the program cannot read this process's memory (/proc/<pid>/mem)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ulong = ctypes.c_ulong
        libc.prctl(ctypes.c_int(_PR_SET_NO_NEW_PRIVS), ulong(1), ulong(0), ulong(0), ulong(0))
        libc.prctl(ctypes.c_int(_PR_SET_DUMPABLE), ulong(0), ulong(0), ulong(0), ulong(0))
        for capability in range(64):  # EINVAL past the kernel's last capability
            libc.prctl(ctypes.c_int(_PR_CAPBSET_DROP), ulong(capability), ulong(0), ulong(0), ulong(0))
        header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
        return libc.capset(header, (ctypes.c_uint32 * 6)()) == 0
    except (OSError, AttributeError):
        return False


def _unshare(flags: int) -> bool:
    if hasattr(os, "unshare"):  # Python 3.12+
        try:
            os.unshare(flags)
            return True
        except OSError:
            return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).unshare(ctypes.c_int(flags)) == 0
    except (OSError, AttributeError):
        return False


def _readonly_outside(work: str) -> bool:
    """In our own mount namespace: keep ``work`` writable and remount every other mount read-only."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return False
    if libc.mount(work.encode(), work.encode(), None, _MS_BIND | _MS_REC, None) != 0:
        return False
    complete = True
    for mountpoint, options in _mounts():
        if mountpoint == work or mountpoint.startswith(work + "/"):
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | sum(_MOUNT_FLAGS.get(option, 0) for option in options)
        if libc.mount(None, mountpoint.encode(), None, flags, None) != 0:
            complete = False
    return complete


def _mounts() -> list[tuple[str, list[str]]]:
    """(mount point, mount options) for each line of /proc/self/mountinfo."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    return [(_unescape(fields[4]), fields[5].split(",")) for fields in (line.split() for line in lines)]


def _unescape(path: str) -> str:
    """Mountinfo writes space, tab, newline and backslash as three octal digits after a backslash."""
    parts = path.split("\\")
    return parts[0] + "".join(chr(int(part[:3], 8)) + part[3:] for part in parts[1:])


def _try_write(path: str, text: str) -> bool:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return True
    except OSError:
        return False


def _set_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        try:
            _, hard = resource.getrlimit(limit)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, value))
        except (OSError, ValueError):
            pass


def _run_program(source: str, test: bytes | None, work: str, verdict_fd: int, box: list[bytes]) -> NoReturn:
    """In the program's process: run it (``_execute``), write the verdict only if it ran to its end, exit.

    The verdict line is popped from ``box`` onto this frame's value stack before the program's first line and sliced
    to nothing unless ``_execute`` returned 1, so no frame's locals, no object that ``gc`` lists and no descriptor
    holds it while the program (or anything it left behind: threads, signal handlers, finalizers) can run. Every
    name this frame uses after the program started was bound before it (``_execute`` is looked up, and its frame
    created, before the program's first line; rebinding ``os.write`` or ``_execute.__code__`` later changes nothing).
    """
    import builtins
    import marshal
    import site

    write, exit_now, caught = os.write, os._exit, BaseException
    tools = (exec, marshal.loads, builtins)
    sys.path.extend(path for path in site.getsitepackages() if path not in sys.path)  # -S skipped them
    status = [1]
    try:
        try:  # noqa: SIM105 — contextlib would cost every run its import
            write(verdict_fd, box.pop()[:_execute(source, test, work, tools, status) * 4096])
        except caught:  # raised by what the program left behind: not a pass, and nothing more to do
            pass
        _flush()
    finally:
        exit_now(status[0])


def _execute(source: str, test: bytes | None, work: str, tools: tuple[Any, Any, Any], status: list[int]) -> int:
    """The prelude, the code as ``__main__``, then the test: 1 when all of it ran to its end, else 0 with the exit
    code in ``status[0]``. Any exception, ``SystemExit`` included (as in HumanEval's harness), is a failure.

    ``test`` is the parent's compiled test with ``check``'s body inline (``check_program``). What decides the
    outcome after the program started is on this frame's value stack, pushed before: ``exec`` and the test's code
    object (on Python 3.13 a program can rewrite a frame's locals, not its stack). What the test sees comes from
    ``_scope``: the program's names, less any that shadow a builtin, and the builtins as they were before; a
    program that tampers with that can deceive the test (like an object whose ``==`` is always true) but cannot
    make it skip a statement.
    """
    run, loads, builtins = tools
    test_text, tests = loads(test) if test is not None else ("", None)
    try:
        os.chdir(work)
        program = compile(source, "<program>", "exec")
        _install_guards(work)
        pristine = dict(builtins.__dict__)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        if tests is None:
            run(program, namespace)
        else:
            run(tests, _scope(run(program, namespace), namespace, pristine))
        status[0] = 0
        return 1
    except SystemExit as exc:
        status[0] = _exit_code(exc.code)
    except BaseException as exc:  # reported as the interpreter would, without the harness's frames
        _print_exception(exc, {"<program>": source, "<test>": test_text})
    return 0


def _scope(_: None, namespace: dict[Any, Any], pristine: dict[str, Any]) -> dict[str, Any]:
    """The test's globals: the program's names (plain ``str`` keys) that do not shadow a builtin, and ``pristine``
    as the builtins."""
    scope = {name: value for name, value in namespace.items() if type(name) is str and name not in pristine}
    scope["__name__"], scope["__builtins__"] = "__main__", pristine
    return scope


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 — contextlib would cost every run its import
            stream.flush()
        except BaseException:  # a full disk or a closed stream: nothing more to say
            pass


def _print_exception(exc: BaseException, sources: dict[str, str]) -> None:
    try:
        import linecache
        import traceback

        for filename, source in sources.items():
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
    except BaseException:  # e.g. no memory left to format it
        os.write(2, f"{type(exc).__name__}\n".encode())


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _install_guards(work: str) -> None:
    """The prelude: no sockets, no writes outside ``work``, no programs run, no signals sent, no new sessions,
    no trace or profile functions.

    Defence in depth only: code in the same interpreter can get around all of it (ctypes, ``posix``, the MRO).
    """
    import _posixsubprocess
    import _socket
    import builtins
    import io

    def inside(path: object) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor
        try:
            real = os.path.realpath(os.fsdecode(os.fspath(path)))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return real == work or real.startswith(work + os.sep) or real == os.devnull

    def deny(what: str) -> NoReturn:
        raise PermissionError(f"sandbox: {what} is not allowed")

    real_open = io.open

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if set(str(mode)) & set("wax+") and not inside(file):
            deny(f"writing {file!r}")
        return real_open(file, mode, *args, **kwargs)

    real_os_open = os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def guarded_os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & write_flags and (dir_fd is not None or not inside(path)):
            deny(f"writing {path!r}")
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def paths_inside(name: str) -> Any:
        function = getattr(os, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            for value in (*args, *kwargs.values()):
                if isinstance(value, str | bytes | os.PathLike) and not inside(value):
                    deny(f"os.{name}({value!r})")
            return function(*args, **kwargs)
        return guarded

    def denied(name: str) -> Any:
        def refuse(*_: Any, **__: Any) -> NoReturn:
            deny(name)
        return refuse

    class GuardedSocket(_socket.socket):
        """``socket.socket`` subclasses whatever ``_socket.socket`` is when it is first imported."""

        __slots__ = ()

        def __init__(self, *_: Any, **__: Any) -> None:
            deny("opening a network socket")

    def untraced(name: str) -> Any:
        def refuse(function: Any) -> None:  # None is allowed: tracing is off, so that changes nothing
            if function is not None:
                deny(f"sys.{name}")
        return refuse

    builtins.open = io.open = guarded_open  # type: ignore[assignment]
    # a trace function (or, from 3.12, a sys.monitoring callback) could jump over the test's statements; the
    # originals are dropped, not kept: nothing refers to them any more, so gc cannot hand them back either
    for name in ("settrace", "setprofile", "_settraceallthreads", "_setprofileallthreads"):
        if hasattr(sys, name):
            setattr(sys, name, untraced(name))
    if hasattr(sys, "monitoring"):
        import gc

        del sys.monitoring
        gc.collect()  # sys.monitoring and its functions refer to each other: collect the cycle now
    os.open = guarded_os_open  # type: ignore[assignment]
    for name in ("remove", "unlink", "rmdir", "mkdir", "rename", "replace", "chmod", "chown", "lchown", "truncate",
                 "symlink", "link", "utime", "mkfifo", "mknod", "chroot"):
        if hasattr(os, name):
            setattr(os, name, paths_inside(name))
    for name in ("system", "popen", "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
                 "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe",
                 "posix_spawn", "posix_spawnp", "kill", "killpg", "setsid", "setpgrp", "setpgid", "setuid",
                 "setgid", "setresuid", "setresgid"):
        if hasattr(os, name):
            setattr(os, name, denied(f"os.{name}"))
    _posixsubprocess.fork_exec = denied("subprocess")
    _socket.socket = _socket.SocketType = GuardedSocket  # type: ignore[misc]
    if "socket" in sys.modules:
        sys.modules["socket"].socket = GuardedSocket  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
