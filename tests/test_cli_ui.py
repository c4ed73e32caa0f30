"""`eval-pipeline ui` starts a real Dagster webserver and daemon on the workspace, the location loads, and a stop
signal ends every process it started."""

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dagster_live import (
    HOST,
    LiveDagster,
    _executable,
    _spawn,
    deployment_env,
    free_port,
    stop_groups,
)

REPO = Path(__file__).resolve().parent.parent
psutil = pytest.importorskip("psutil")


@pytest.mark.slow
def test_ui_serves_the_workspace_and_registers_declared_models(tmp_path: Path) -> None:
    env = deployment_env(tmp_path / "dagster", tmp_path / "state", REPO / "evals", tmp_path / "models")
    del env["DAGSTER_HOME"]  # `ui` puts the instance in the state folder itself
    port = free_port()
    process = _spawn("ui", [_executable("eval-pipeline"), "ui", "--host", HOST, "--port", str(port)], env, tmp_path)
    try:
        live = LiveDagster(f"http://{HOST}:{port}", tmp_path / "state" / "dagster", tmp_path / "state", [process])
        live.wait_ready()
        assert "smollm2-135m" in live.partition_keys("quickstart_eval")
        assert (tmp_path / "state" / "dagster" / "dagster.yaml").is_file()
        assert "MLflow UI:  mlflow ui --backend-store-uri sqlite:///" in process.tail()
    finally:
        stop_groups([process])


# --- stopping: SIGINT or SIGTERM ends the whole tree -----------------------------------------------------------

STOP_WAIT_S = 120.0  # a bound on the stop (dagster dev allows its children 60 s), never a timing assertion
# A running `ui` is these processes under it (command-line fragments): dagster dev, the webserver, the daemon, and
# the code servers (the proxy `code-server start` and the `api grpc` server it runs).
PARTS = {"dev": "dagster dev", "webserver": "dagster_webserver", "daemon": "dagster._daemon",
         "code server": "code-server start", "grpc server": "api grpc"}


def _ui_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _part(process: psutil.Process) -> str | None:
    try:
        command = " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return None
    return next((name for name, fragment in PARTS.items() if fragment in command), None)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _poll(probe: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_ends_the_webserver_daemon_and_code_servers(tmp_path: Path, sig: signal.Signals,
                                                                   code: int) -> None:
    env = deployment_env(tmp_path / "dagster", tmp_path / "state", REPO / "evals", tmp_path / "models")
    del env["DAGSTER_HOME"]
    port = free_port()
    process = _spawn("ui", [_executable("eval-pipeline"), "ui", "--host", HOST, "--port", str(port)], env, tmp_path)
    tree: list[psutil.Process] = []
    try:
        live = LiveDagster(f"http://{HOST}:{port}", tmp_path / "state" / "dagster", tmp_path / "state", [process])
        live.wait_ready()

        def all_parts_up() -> bool:
            tree[:] = _ui_tree(process.popen.pid)
            return set(PARTS) <= {_part(p) for p in tree}

        _poll(all_parts_up, f"every part of the UI ({', '.join(PARTS)}) to run", 60.0)
        process.popen.send_signal(sig)  # to `eval-pipeline ui` alone, as `kill` or a service manager sends it
        assert process.popen.wait(timeout=STOP_WAIT_S) == code, process.tail()

        def survivors() -> list[str]:
            return [f"{p.pid} {_part(p)}" for p in tree if _running(p)]

        _poll(lambda: not survivors(), "every process of the UI to end", 30.0)
        assert f"{sig.name}: stopping the Dagster webserver" in process.tail()
    finally:
        for leftover in tree:
            if _running(leftover):
                leftover.kill()
        stop_groups([process])
