"""Fixtures for agent services: the AgentCore and Lambda fakes on 127.0.0.1, reached by the real boto3 clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.agentcore import AgentCoreFake
from tests.fakes.lambda_fake import LambdaFake


@pytest.fixture
def aws_dummy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and no profile or global endpoint: only the per-service endpoints tests set count."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def agentcore(aws_dummy: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentCoreFake]:
    with AgentCoreFake() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", server.url)
        yield server  # type: ignore[misc]


@pytest.fixture
def lambda_fake(aws_dummy: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaFake]:
    with LambdaFake() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.url)
        yield server  # type: ignore[misc]
