"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temporary folder, ``postgres`` on a free port of
127.0.0.1, stopped at the end. CI installs Debian's ``postgresql`` package (``.ci/run``); as root, the server runs
as the ``postgres`` user the package creates (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg2

        connection = psycopg2.connect(self.url())
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres`` (Debian puts them under /usr/lib/postgresql/<version>/bin)."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "postgres").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVER_USER, "--", *command]


@contextlib.contextmanager
def running_postgres(password: str = "eval-pipeline") -> Iterator[PostgresServer]:
    """Start a server, yield it, stop it and delete its data."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="eval-pg-"))
    data, password_file = root / "data", root / "password"
    password_file.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER)
        shutil.chown(password_file, SERVER_USER)
    subprocess.run(_as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", SERVER_USER, "--auth=md5",
                                    f"--pwfile={password_file}", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(_as_server_user([str(binaries / "postgres"), "-D", str(data), "-p", str(port),
                                               "-h", "127.0.0.1", "-k", str(root), "-c", "fsync=off",
                                               "-c", "max_connections=200"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port, server)
        yield PostgresServer("127.0.0.1", port, SERVER_USER, password, data)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(port: int, server: subprocess.Popen, attempts: int = 300) -> None:
    for _ in range(attempts):
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.returncode} before accepting connections")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(0.2)  # the socket opens a moment before the server takes logins
                return
        time.sleep(0.1)
    raise RuntimeError(f"postgres did not listen on 127.0.0.1:{port}")
