"""The prelude: Python-level guards installed in the program's interpreter just before its first line.

No sockets, no writes outside the working directory, no programs run, no signals sent, no new sessions, no trace or
profile functions. Defence in depth only: code in the same interpreter can get around all of it (ctypes, ``posix``,
the classes' MRO); the operating system's mechanisms (``isolation``) are the boundary. Refusing trace functions and
``sys.monitoring`` is what keeps a program from jumping over a test's statements.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing itself costs every run a few milliseconds
    from typing import Any, NoReturn


def install_guards(work: str) -> None:
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
