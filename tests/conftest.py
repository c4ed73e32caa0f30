import os
import pathlib
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import requests
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("EVAL_PIPELINE_MODEL_CACHE", str(REPO / ".eval_pipeline" / "models"))

pytest_plugins = ["tests.fixtures_models", "tests.fixtures_agents"]


def _keep_absl_off_pytests_streams() -> None:
    """rouge_score (a reference in the scoring tests) imports absl, whose log handler keeps the ``sys.stderr`` of
    that moment, pytest's capture, and closes it when any library calls ``logging.config.dictConfig`` (Dagster does,
    for its ``python_logs`` handlers): every later capture in the session then fails with "I/O operation on closed
    file". Point the handler at the process's own stderr, which it never closes."""
    try:
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


_keep_absl_off_pytests_streams()

@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server on 127.0.0.1 that a sandboxed program must not reach (a short accept timeout)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.3)
    yield server
    server.close()


STRAY_STATE = ("mlflow.db", "mlruns", "artifacts")
"""What MLflow writes in the working directory when code logs without the pipeline's tracking URI."""


@pytest.fixture(autouse=True, scope="session")
def no_state_written_in_the_working_directory() -> Iterator[None]:
    """Fail the session when a test (or the code under test) left MLflow state in the working directory: every
    run must log where the pipeline's state folder says."""
    before = {name for name in STRAY_STATE if (pathlib.Path.cwd() / name).exists()}
    yield
    stray = sorted(name for name in STRAY_STATE if (pathlib.Path.cwd() / name).exists())
    new = [name for name in stray if name not in before]
    assert not new, f"tests left {new} in {pathlib.Path.cwd()}: something logged to MLflow's default store"


@pytest.fixture
def eval_home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A fresh state folder for one test: Dagster instance, MLflow store, cache and outputs all inside it."""
    home = tmp_path / "home"
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on 127.0.0.1 for the whole session (S3 and the other services moto implements)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Dummy credentials, a region, and S3 at the (freshly reset) moto server; returns its URL."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    return moto_endpoint


@pytest.fixture(scope="session")
def postgres_server() -> Iterator["PostgresServer"]:
    """A PostgreSQL server on 127.0.0.1 for the whole session (started on first use)."""
    from tests.postgres_server import running_postgres

    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: "PostgresServer", request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database for one test."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    return postgres_server.create_database(name)
