"""Tools through the real clients: Bedrock Converse (boto3), OpenAI chat (HTTP) and SageMaker's messages API,
against the fake on 127.0.0.1, checking what went over the wire and what came back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, assistant, tool_result
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backends import build_remote_sampler
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.bedrock_batch import BedrockBatchSampler
from eval_pipeline.inference.precomputed import PrecomputedSampler
from eval_pipeline.inference.remote import RemoteSampler
from eval_pipeline.suites.spec import ModelSpec
from tests.fakes import FakeLLMServer

WEATHER = ToolSpec("get_weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CLOCK = ToolSpec("get_time", "The time in a city.", {"type": "object", "properties": {"city": {"type": "string"}}})
ASK = "What is the weather in Oslo and Paris?"
SCRIPT = {ASK: [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                {"name": "get_weather", "arguments": {"city": "Paris"}}]}
PARAMS = GenerationParams(max_tokens=16)


@pytest.fixture
def fake(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer={ASK: "Rain in Oslo, sun in Paris."}, tool_calls=SCRIPT,
                       endpoint_shapes={"chat-ep": "openai", "tgi-ep": "tgi_list"}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
        yield server


def sampler(fake: FakeLLMServer, backend: str) -> RemoteSampler:
    spec: dict[str, Any] = {
        "bedrock": {"backend": "bedrock", "model": "amazon.nova-micro-v1:0"},
        "openai": {"backend": "openai", "base_url": f"{fake.url}/v1", "model": "served-model"},
        "sagemaker": {"backend": "sagemaker", "endpoint": "chat-ep", "request_format": "messages"},
    }[backend]
    return build_remote_sampler(ModelSpec(name="m", max_attempts=1, **spec))


def first_turn(tools: tuple[ToolSpec, ...] = (WEATHER, CLOCK)) -> GenerationRequest:
    return GenerationRequest("s", 0, (ChatMessage("system", "Use tools."), ChatMessage("user", ASK)), tools=tools)


def second_turn(calls: tuple[ToolCall, ...]) -> GenerationRequest:
    """The conversation after the calls: the first result an error, the second a success."""
    return GenerationRequest("s", 0, (ChatMessage("system", "Use tools."), ChatMessage("user", ASK),
                                      assistant("", calls), tool_result(calls[0], "no station", is_error=True),
                                      tool_result(calls[1], "sunny")), tools=(WEATHER, CLOCK))


def one(fake: FakeLLMServer, backend: str, request: GenerationRequest) -> tuple[Completion, dict[str, Any]]:
    [completion] = sampler(fake, backend).generate([request], PARAMS)
    return completion, fake.stats()["recent"][-1]


@pytest.mark.parametrize("backend", ["bedrock", "openai", "sagemaker"])
def test_tool_calls_come_back_and_results_go_out(fake: FakeLLMServer, backend: str) -> None:
    completion, sent = one(fake, backend, first_turn())
    assert completion.error is None, completion.error
    assert [(c.name, json.loads(c.arguments)) for c in completion.tool_calls] == [
        ("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Paris"})]
    assert completion.finish_reason == "tool_calls" and completion.output == ""
    assert len({c.id for c in completion.tool_calls}) == 2 and all(c.id for c in completion.tool_calls)
    assert sent["tools"] == ["get_weather", "get_time"] and sent["tool_results"] == []

    answer, sent = one(fake, backend, second_turn(completion.tool_calls))
    assert answer.error is None, answer.error
    assert answer.output == "Rain in Oslo, sun in Paris." and answer.tool_calls == ()
    ids = [c.id for c in completion.tool_calls]
    error_text = "no station" if backend == "bedrock" else "Error: no station"  # OpenAI has no error flag
    assert sent["tool_results"] == [{"id": ids[0], "text": error_text, "is_error": backend == "bedrock"},
                                    {"id": ids[1], "text": "sunny", "is_error": False}]


def test_bedrock_wire_shape(fake: FakeLLMServer) -> None:
    completion, sent = one(fake, "bedrock", first_turn())
    assert sent["body"]["toolConfig"] == {"tools": [
        {"toolSpec": {"name": "get_weather", "description": "The weather in a city.",
                      "inputSchema": {"json": dict(WEATHER.parameters)}}},
        {"toolSpec": {"name": "get_time", "description": "The time in a city.",
                      "inputSchema": {"json": dict(CLOCK.parameters)}}}]}
    _, sent = one(fake, "bedrock", second_turn(completion.tool_calls))
    first, second = completion.tool_calls
    assert sent["body"]["system"] == [{"text": "Use tools."}]
    assert sent["body"]["messages"] == [
        {"role": "user", "content": [{"text": ASK}]},
        {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": first.id, "name": "get_weather", "input": {"city": "Oslo"}}},
            {"toolUse": {"toolUseId": second.id, "name": "get_weather", "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [  # both results in one user message, the failed one marked
            {"toolResult": {"toolUseId": first.id, "content": [{"text": "no station"}], "status": "error"}},
            {"toolResult": {"toolUseId": second.id, "content": [{"text": "sunny"}]}}]}]


@pytest.mark.parametrize("backend", ["openai", "sagemaker"])
def test_openai_wire_shape(fake: FakeLLMServer, backend: str) -> None:
    completion, sent = one(fake, backend, first_turn((WEATHER,)))
    assert sent["body"]["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.", "parameters": dict(WEATHER.parameters)}}]
    first, second = completion.tool_calls
    _, sent = one(fake, backend, second_turn(completion.tool_calls))
    assert sent["body"]["messages"][2:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": first.id, "type": "function", "function": {"name": "get_weather", "arguments": first.arguments}},
            {"id": second.id, "type": "function", "function": {"name": "get_weather", "arguments": second.arguments}}]},
        {"role": "tool", "tool_call_id": first.id, "content": "Error: no station"},
        {"role": "tool", "tool_call_id": second.id, "content": "sunny"}]


@pytest.mark.parametrize("backend", ["bedrock", "openai"])
def test_without_tools_the_wire_is_as_before(fake: FakeLLMServer, backend: str) -> None:
    completion, sent = one(fake, backend, first_turn(tools=()))
    assert completion.tool_calls == () and completion.output == "Rain in Oslo, sun in Paris."
    assert "toolConfig" not in sent["body"] and "tools" not in sent["body"]


@pytest.mark.parametrize("backend", ["bedrock", "openai"])
def test_a_result_for_a_call_never_made_is_refused_as_the_service_does(fake: FakeLLMServer, backend: str) -> None:
    stray = ToolCall("never-asked", "get_weather", "{}")
    request = GenerationRequest("s", 0, (ChatMessage("user", ASK), assistant("ok"), tool_result(stray, "rain")),
                                tools=(WEATHER,))
    completion, sent = one(fake, backend, request)
    assert completion.error is not None and sent["status"] == 400
    assert "toolResult" in completion.error or "tool_calls" in completion.error


def test_backends_that_cannot_offer_tools_refuse_them(fake: FakeLLMServer, tmp_path: Path) -> None:
    with_tools = [first_turn()]
    tgi = build_remote_sampler(ModelSpec(name="m", backend="sagemaker", endpoint="tgi-ep", request_format="tgi"))
    with pytest.raises(EvalInputError, match=r"sagemaker.*tgi.*get_weather"):
        tgi.generate(with_tools, PARAMS)
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"sample_id": "s", "response": "x"}) + "\n")
    with pytest.raises(EvalInputError, match="precomputed"):
        PrecomputedSampler.from_file(str(responses)).generate(with_tools, PARAMS)
    batch = BedrockBatchSampler("amazon.nova-micro-v1:0", s3_uri="s3://bucket/prefix", role_arn="arn:role")
    with pytest.raises(EvalInputError, match="bedrock batch"):
        batch.generate(with_tools, PARAMS)
    assert fake.requests_total == 0
    [plain] = tgi.generate([first_turn(tools=())], PARAMS)  # without tools the same sampler still works
    assert plain.error is None
