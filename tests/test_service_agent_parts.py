"""Service agents' parts: reply parsing, config validation, the registry paths, and listing AgentCore runtimes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
import requests

from eval_pipeline.agents.agentcore import AGENTCORE, AgentCoreSettings
from eval_pipeline.agents.lambda_agent import LAMBDA, LambdaSettings, function_error
from eval_pipeline.agents.runtimes import list_bedrock_agentcore_runtimes
from eval_pipeline.agents.service_agent import ServiceReply, ServiceReplyError, parse_reply, session_id_for
from eval_pipeline.errors import EvalInputError
from eval_pipeline.registry import load_path
from tests.fakes.agentcore import AgentCoreFake

ARN = "arn:aws:bedrock-agentcore:eu-west-1:123456789012:runtime/my_agent-AbC123xyz9"


# --- replies ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "content_type", "expected"), [
    (b'{"response": "a", "reward": 1, "done": true}', "application/json", ServiceReply("a", 1.0, True)),
    (b'{"result": {"x": 1}}', "application/json", ServiceReply('{"x": 1}')),
    (b'"quoted"', "application/json", ServiceReply("quoted")),
    (b"not json at all", "text/plain", ServiceReply("not json at all")),
    (b'{"other": 1}', "application/json", ServiceReply('{"other": 1}')),
    (b'{"reward": "high", "done": "yes", "output": "o"}', None, ServiceReply("o")),
    (b'{"statusCode": 200, "body": "{\\"response\\": \\"inner\\"}"}', None, ServiceReply("inner")),
    (b'data: "a"\n\ndata: {"delta": "b"}\n\n: comment\nevent: x\ndata: raw c\n\n', "text/event-stream",
     ServiceReply("abraw c")),
    (b'data: {"text": "x", "reward": 0.5}\n\ndata: {"done": false}\n\n', "text/event-stream; charset=utf-8",
     ServiceReply("x", 0.5, False)),
    (b'data: {"response": "sniffed"}\n\n', "application/octet-stream", ServiceReply("sniffed")),
])
def test_parse_reply(body: bytes, content_type: str | None, expected: ServiceReply) -> None:
    assert parse_reply(body, content_type) == expected


def test_sse_error_event_raises() -> None:
    body = b'data: "ok"\n\ndata: {"error": "boom", "error_type": "ValueError"}\n\n'
    with pytest.raises(ServiceReplyError, match=r"boom.*ValueError"):
        parse_reply(body, "text/event-stream")


def test_function_error_text() -> None:
    assert function_error(b'{"errorMessage": "m", "errorType": "KeyError"}', "Unhandled") == "KeyError: m"
    assert function_error(b'{"errorMessage": "m"}', "Handled") == "Handled: m"
    assert function_error(b"oops", "Unhandled") == "Unhandled: oops"


def test_session_id_is_reproducible_and_in_range() -> None:
    assert session_id_for("a") == session_id_for("a") != session_id_for("b")
    assert 33 <= len(session_id_for("")) <= 256


# --- configs ---------------------------------------------------------------------------------------------------

def test_agentcore_config() -> None:
    assert AGENTCORE.validate(ARN) == AgentCoreSettings(arn=ARN, region="eu-west-1")
    settings = AGENTCORE.validate({"kind": "agentcore", "arn": ARN, "qualifier": "PROD", "timeout_s": 30,
                                   "region": "us-east-1"}, "suite.yaml")
    assert (settings.qualifier, settings.timeout_s, settings.region) == ("PROD", 30.0, "us-east-1")


@pytest.mark.parametrize(("config", "field", "words"), [
    ({}, "environment.arn", "required"),
    ({"arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}, "environment.arn", "not an AgentCore runtime ARN"),
    ({"arn": "arn:aws:bedrock-agentcore:us-east-1:12345:runtime/x"}, "environment.arn", "not an AgentCore"),
    ({"arn": ARN, "qualifier": "has space"}, "environment.qualifier", "endpoint name"),
    ({"arn": ARN, "timeout_s": 0}, "environment.timeout_s", "positive"),
    ({"arn": ARN, "max_attempts": 1.5}, "environment.max_attempts", "expected int"),
    ({"arn": ARN, "max_attempts": True}, "environment.max_attempts", "expected int"),
    ({"arn": ARN, "qualifer": "PROD"}, "environment.qualifer", "unknown setting"),
])
def test_agentcore_bad_config(config: dict, field: str, words: str) -> None:
    with pytest.raises(EvalInputError, match=words) as caught:
        AGENTCORE.validate(config, "suite.yaml")
    assert (caught.value.file, caught.value.field) == ("suite.yaml", field)


def test_lambda_config() -> None:
    assert LAMBDA.validate("my-fn") == LambdaSettings(function="my-fn")
    assert LAMBDA.validate("my-fn:live").function == "my-fn:live"
    arn = "arn:aws:lambda:ap-south-1:123456789012:function:my-fn"
    assert LAMBDA.validate({"arn": arn}).region == "ap-south-1"
    assert LAMBDA.validate("123456789012:function:my-fn").region is None
    with pytest.warns(UserWarning, match=r"qualifier.*ignored"):
        assert LAMBDA.validate({"function": "my-fn", "qualifier": "PROD"}, "s.yaml").function == "my-fn"


@pytest.mark.parametrize("function", ["", "has space", "arn:aws:lambda:us-east-1:1:function:f", "a" * 65, ARN])
def test_lambda_bad_config(function: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        LAMBDA.validate({"function": function}, "suite.yaml")
    assert (caught.value.file, caught.value.field) == ("suite.yaml", "environment.function")


def test_configs_from_an_environment_spec() -> None:
    """What the suite loader hands over: an EnvironmentSpec (unset fields None, an options mapping)."""
    from eval_pipeline.agents.spec import EnvironmentSpec

    spec = EnvironmentSpec(kind="agentcore", arn=ARN, qualifier="PROD", timeout_s=30.0,
                           options={"user_id": "evaluator"})
    assert AGENTCORE.validate(spec, "s.yaml") == AgentCoreSettings(arn=ARN, qualifier="PROD", region="eu-west-1",
                                                                  timeout_s=30.0, user_id="evaluator")
    assert AGENTCORE.label(spec) == f"agentcore:{ARN}"
    lam = EnvironmentSpec(kind="lambda", arn="arn:aws:lambda:us-east-2:123456789012:function:f", max_attempts=2)
    assert LAMBDA.validate(lam) == LambdaSettings(function=lam.arn, region="us-east-2", max_attempts=2)
    assert LAMBDA.label(lam) == f"lambda:{lam.arn}"
    with pytest.raises(EvalInputError) as caught:
        AGENTCORE.validate(EnvironmentSpec(kind="agentcore", path="m:C", arn=ARN), "s.yaml")
    assert caught.value.field == "environment.path"
    with pytest.raises(EvalInputError) as caught:
        LAMBDA.validate(EnvironmentSpec(kind="lambda"), "s.yaml", field="suite.environment")
    assert caught.value.field == "suite.environment.function"


def test_registry_paths_load() -> None:
    from eval_pipeline.agents.registry import ENVIRONMENTS

    assert load_path("eval_pipeline.agents.agentcore:AGENTCORE") is AGENTCORE is ENVIRONMENTS.get("agentcore")
    assert load_path("eval_pipeline.agents.lambda_agent:LAMBDA") is LAMBDA is ENVIRONMENTS.get("lambda")


# --- listing runtimes ------------------------------------------------------------------------------------------

def test_list_runtimes_against_moto(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL", aws_env)
    control = boto3.client("bedrock-agentcore-control", region_name="us-east-1")
    created = []
    for name in ("alpha", "beta", "gamma"):
        reply = control.create_agent_runtime(
            agentRuntimeName=name, roleArn="arn:aws:iam::123456789012:role/agent",
            agentRuntimeArtifact={"containerConfiguration": {
                "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:latest"}},
            networkConfiguration={"networkMode": "PUBLIC"})
        created.append(reply)
    expected = {(name, r["agentRuntimeId"], r["agentRuntimeArn"])
                for name, r in zip(("alpha", "beta", "gamma"), created, strict=True)}
    listed = list_bedrock_agentcore_runtimes()
    assert {(r["name"], r["runtime_id"], r["arn"]) for r in listed} == expected
    assert all(set(r) == {"name", "runtime_id", "arn", "status"} and r["status"] for r in listed)
    requests.post(f"{aws_env}/moto-api/reset", timeout=10)
    assert list_bedrock_agentcore_runtimes(boto3.session.Session(region_name="us-east-1")) == []


@pytest.fixture
def paging_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentCoreFake]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with AgentCoreFake() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL", server.url)
        yield server  # type: ignore[misc]


def test_list_runtimes_reads_every_page(paging_fake: AgentCoreFake) -> None:
    """moto returns one page whatever maxResults says; this fake pages by two, so five runtimes take three calls."""
    arns = [paging_fake.add_runtime(f"agent_{i}", f"agent_{i}-ABCDEFGHI{i}", status=s)
            for i, s in enumerate(["READY", "CREATING", "READY", "FAILED", "READY"])]
    listed = list_bedrock_agentcore_runtimes()
    assert [r["arn"] for r in listed] == arns
    assert [r["status"] for r in listed] == ["READY", "CREATING", "READY", "FAILED", "READY"]
    assert listed[1] == {"name": "agent_1", "runtime_id": "agent_1-ABCDEFGHI1", "arn": arns[1], "status": "CREATING"}
    assert paging_fake.list_calls == 3
    assert json.loads(json.dumps(listed)) == listed
