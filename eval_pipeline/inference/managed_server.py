"""A model server this process starts, waits for, and stops (the ``vllm`` backend's server)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """The server exited or never became healthy; the message carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ManagedServer:
    """Runs ``command`` in its own process group, logging to ``log_path``; ``start`` returns once ``health_url``
    answers 200, and raises ``ServerStartError`` (with the log's tail) if the process dies or time runs out."""

    def __init__(self, command: Sequence[str], *, health_url: str, log_path: Path,
                 startup_timeout_s: float = 900.0, poll_s: float = 0.5) -> None:
        self.command, self.health_url, self.log_path = list(command), health_url, log_path
        self.startup_timeout_s, self.poll_s = startup_timeout_s, poll_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"{self._name()} exited with status {self.process.returncode} before it "
                                       f"was ready; end of {self.log_path}:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(self.poll_s)
        self.stop()
        raise ServerStartError(f"{self._name()} was not healthy at {self.health_url} after "
                               f"{self.startup_timeout_s:.0f} s; end of {self.log_path}:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM the whole process group (servers fork workers), SIGKILL it after ``grace_s``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _name(self) -> str:
        return Path(self.command[0]).name + (f" {' '.join(self.command[1:3])}" if len(self.command) > 1 else "")

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child, on Linux: get SIGTERM when the process that started it dies, even by kill -9, so a killed
    run never leaves a server holding the GPU."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
