"""The fake LLM server, proven with the real clients: boto3 bedrock-runtime / sagemaker-runtime and requests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import botocore.retries.standard
import botocore.session
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.validate import ParamValidator

from tests.fakes import FakeLLMServer, FakeLLMServerProcess, request_key

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
USER_HI = [{"role": "user", "content": [{"text": "hi there"}]}]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A fresh fake on a free port, stopped after the test."""
    with FakeLLMServer(seed=7, retry_after_s=0.05) as srv:
        yield srv


@pytest.fixture
def aws_env(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> FakeLLMServer:
    """Point the standard AWS endpoint variables at the fake, with dummy credentials and no user config."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
    return server


def client(service: str, **config: Any) -> Any:
    """A production-style boto3 client (endpoint from the environment), botocore retries off unless given."""
    config.setdefault("retries", {"total_max_attempts": 1})
    return boto3.session.Session().client(service, config=Config(**config))


def converse(model: str = MODEL, text: str = "hi there", **kwargs: Any) -> dict[str, Any]:
    """One Converse call through a fresh bedrock-runtime client."""
    messages = [{"role": "user", "content": [{"text": text}]}]
    return client("bedrock-runtime").converse(modelId=model, messages=messages, **kwargs)


def invoke(endpoint: str, body: dict[str, Any], **kwargs: Any) -> Any:
    """One InvokeEndpoint call; returns the decoded JSON body."""
    resp = client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json", **kwargs
    )
    assert resp["ContentType"] == "application/json"
    return json.loads(resp["Body"].read())


def chat(server: FakeLLMServer, body: dict[str, Any], key: str | None = None, **kwargs: Any) -> requests.Response:
    """One OpenAI-compatible chat completion over requests."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=10, **kwargs)


def chat_body(text: str = "hello", model: str = "gpt-fake", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def wait_idle(server: FakeLLMServer, timeout_s: float = 5.0) -> None:
    """Wait until the fake has finished every request it received."""
    deadline = time.monotonic() + timeout_s
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.in_flight == 0


# ---- Bedrock Converse ------------------------------------------------------------------------------------------


def test_converse_round_trip_with_real_boto3(aws_env: FakeLLMServer) -> None:
    resp = client("bedrock-runtime").converse(
        modelId=MODEL,
        system=[{"text": "be brief"}],
        messages=[
            {"role": "user", "content": [{"text": "first question"}]},
            {"role": "assistant", "content": [{"text": "first answer"}]},
            {"role": "user", "content": [{"text": "hi there"}]},
        ],
        inferenceConfig={"maxTokens": 64, "temperature": 0.0, "topP": 0.9},
    )
    assert resp["output"]["message"] == {"role": "assistant", "content": [{"text": "echo: hi there"}]}
    assert resp["stopReason"] == "end_turn"
    # whitespace tokens: "be brief" 2 + 2 + 2 + 2 = 8 in, "echo: hi there" = 3 out
    assert resp["usage"] == {"inputTokens": 8, "outputTokens": 3, "totalTokens": 11}
    assert resp["metrics"]["latencyMs"] >= 0
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["ResponseMetadata"]["RequestId"]
    (rec,) = aws_env.recent_requests
    assert rec.protocol == "bedrock"
    assert rec.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert rec.target == MODEL
    assert "modelId" not in rec.body
    assert rec.body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.0, "topP": 0.9}
    assert rec.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/us-east-1/bedrock/aws4_request" in rec.headers["authorization"]


def test_converse_inference_profile_arn_is_percent_decoded(aws_env: FakeLLMServer) -> None:
    aws_env.known_models = [PROFILE_ARN]
    aws_env.answer = lambda prompt, model: f"{model} says {prompt}"
    resp = converse(PROFILE_ARN, "ping")
    assert resp["output"]["message"]["content"][0]["text"] == f"{PROFILE_ARN} says ping"
    (rec,) = aws_env.recent_requests
    assert "%3A" in rec.path
    assert "%2F" in rec.path
    assert rec.target == PROFILE_ARN


def test_converse_max_tokens_and_stop_sequences(aws_env: FakeLLMServer) -> None:
    aws_env.answer = {"count": "one two  three four five", "stop": "alpha beta END gamma"}
    resp = converse(text="count", inferenceConfig={"maxTokens": 3})
    assert resp["output"]["message"]["content"][0]["text"] == "one two  three"
    assert resp["stopReason"] == "max_tokens"
    assert resp["usage"]["outputTokens"] == 3
    resp = converse(text="stop", inferenceConfig={"stopSequences": [" END"]})
    assert resp["output"]["message"]["content"][0]["text"] == "alpha beta"
    assert resp["stopReason"] == "stop_sequence"
    assert converse(text="unmapped prompt")["output"]["message"]["content"][0]["text"] == "echo: unmapped prompt"
    aws_env.answer = {"What is 1 plus 1?": "2", "What is 11 plus 11?": "22"}
    assert invoke("ep", {"inputs": "<s>[INST] What is 11 plus 11? [/INST]"}) == [{"generated_text": "22"}]


@pytest.mark.parametrize(
    "scenario", [{}, {"inferenceConfig": {"maxTokens": 1}}, {"inferenceConfig": {"stopSequences": ["there"]}}]
)
def test_converse_response_matches_pinned_botocore_output_shape(
    aws_env: FakeLLMServer, scenario: dict[str, Any]
) -> None:
    shape = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse").output_shape
    parsed = converse(**scenario)
    parsed.pop("ResponseMetadata")
    report = ParamValidator().validate(parsed, shape)
    assert not report.has_errors(), report.generate_report()
    # botocore drops members it does not know while parsing, so also validate the raw wire JSON
    raw = requests.post(f"{aws_env.url}/model/{MODEL}/converse", json={"messages": USER_HI, **scenario}, timeout=10)
    report = ParamValidator().validate(raw.json(), shape)
    assert not report.has_errors(), report.generate_report()
    # and the validator does catch drift
    broken = raw.json()
    broken["usage"].pop("totalTokens")
    broken["output"]["message"]["content"][0] = {"txt": "x"}
    assert ParamValidator().validate(broken, shape).has_errors()


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("throttle", "ThrottlingException", 429),
        ("validation", "ValidationException", 400),
        ("not_found", "ResourceNotFoundException", 404),
        ("unavailable", "ServiceUnavailableException", 503),
        ("internal", "InternalServerException", 500),
        ("model_timeout", "ModelTimeoutException", 408),
        ("model_error", "ModelErrorException", 424),
        ("access_denied", "AccessDeniedException", 403),
        ("model_not_ready", "ModelNotReadyException", 429),
    ],
)
def test_converse_errors_surface_as_modelled_client_errors(
    aws_env: FakeLLMServer, kind: str, code: str, status: int
) -> None:
    aws_env.fail_next(kind)
    bedrock = client("bedrock-runtime")
    with pytest.raises(ClientError) as info:
        bedrock.converse(modelId=MODEL, messages=USER_HI)
    err = info.value.response
    assert err["Error"]["Code"] == code
    assert err["Error"]["Message"]
    assert err["ResponseMetadata"]["HTTPStatusCode"] == status
    assert isinstance(info.value, getattr(bedrock.exceptions, code))
    assert aws_env.completed == {}
    assert aws_env.requests_by_outcome == {kind: 1}


def test_converse_unknown_model_is_validation_exception(aws_env: FakeLLMServer) -> None:
    aws_env.known_models = [MODEL]
    with pytest.raises(ClientError) as info:
        converse("anthropic.nope-v1:0")
    assert info.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The provided model identifier is invalid.",
    }
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_botocore_standard_retries_recover_from_throttling(
    aws_env: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
    aws_env.fail_next("throttle", 2)
    bedrock = client("bedrock-runtime", retries={"mode": "standard", "total_max_attempts": 3})
    resp = bedrock.converse(modelId=MODEL, messages=USER_HI)
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2
    assert aws_env.requests_total == 3
    assert [r.attempt for r in aws_env.recent_requests] == [1, 2, 3]
    assert list(aws_env.completed.values()) == [1]


# ---- SageMaker runtime -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        ("tgi_list", {"inputs": "hi there", "parameters": {"max_new_tokens": 32, "temperature": 0.1}}),
        ("lmi_dict", {"inputs": "hi there", "parameters": {"max_new_tokens": 32, "top_p": 0.9}}),
        ("openai", {"messages": [{"role": "user", "content": "hi there"}], "max_tokens": 32}),
    ],
)
def test_sagemaker_invoke_endpoint_shapes(aws_env: FakeLLMServer, shape: str, body: dict[str, Any]) -> None:
    aws_env.endpoint_shapes = {"llm": shape}
    out = invoke("llm", body)
    if shape == "tgi_list":
        assert out == [{"generated_text": "echo: hi there"}]
    elif shape == "lmi_dict":
        assert out == {"generated_text": "echo: hi there"}
    else:
        assert out["object"] == "chat.completion"
        assert out["choices"][0]["message"] == {"role": "assistant", "content": "echo: hi there"}
        assert out["choices"][0]["finish_reason"] == "stop"
        assert out["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    (rec,) = aws_env.recent_requests
    assert (rec.protocol, rec.path, rec.target, rec.component) == (
        "sagemaker",
        "/endpoints/llm/invocations",
        "llm",
        None,
    )
    assert rec.body == body


def test_sagemaker_inference_component(aws_env: FakeLLMServer) -> None:
    aws_env.endpoint_shapes = {"shared-ep": "tgi_list", "ic-judge": "lmi_dict"}
    aws_env.known_inference_components = ["ic-judge"]
    aws_env.answer = lambda prompt, model: f"{model}: {prompt}"
    out = invoke("shared-ep", {"inputs": "x"}, InferenceComponentName="ic-judge")
    assert out == {"generated_text": "ic-judge: x"}
    (rec,) = aws_env.recent_requests
    assert rec.headers["x-amzn-sagemaker-inference-component"] == "ic-judge"
    assert rec.component == "ic-judge"
    with pytest.raises(ClientError) as info:
        invoke("shared-ep", {"inputs": "x"}, InferenceComponentName="ic-other")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "ic-other" in info.value.response["Error"]["Message"]


def test_sagemaker_tgi_parameters(aws_env: FakeLLMServer) -> None:
    aws_env.answer = lambda prompt, model: "a b c d e"
    params = {"max_new_tokens": 2, "details": True, "return_full_text": True}
    assert invoke("ep", {"inputs": "Q: ", "parameters": params}) == [
        {"generated_text": "Q: a b", "details": {"finish_reason": "length", "generated_tokens": 2}}
    ]
    out = invoke("ep", {"inputs": "Q", "parameters": {"stop": [" c"], "details": True}})
    assert out == [{"generated_text": "a b", "details": {"finish_reason": "stop_sequence", "generated_tokens": 2}}]


def test_sagemaker_unknown_endpoint_is_validation_error(aws_env: FakeLLMServer) -> None:
    aws_env.known_endpoints = ["llm"]
    with pytest.raises(ClientError) as info:
        invoke("nope", {"inputs": "x"})
    assert info.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint nope of account 123456789012 not found.",
    }
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("throttle", "ThrottlingException", 429),
        ("model_error", "ModelError", 424),
        ("unavailable", "ServiceUnavailable", 503),
        ("internal", "InternalFailure", 500),
        ("model_not_ready", "ModelNotReadyException", 429),
    ],
)
def test_sagemaker_errors_surface_as_client_errors(aws_env: FakeLLMServer, kind: str, code: str, status: int) -> None:
    aws_env.fail_next(kind, protocol="sagemaker")
    with pytest.raises(ClientError) as info:
        invoke("ep", {"inputs": "x"})
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if kind == "model_error":
        assert info.value.response["OriginalStatusCode"] == 500


def test_sagemaker_body_without_inputs_is_model_error(aws_env: FakeLLMServer) -> None:
    with pytest.raises(ClientError) as info:
        invoke("ep", {"prompt": "x"})
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424


# ---- OpenAI-compatible -----------------------------------------------------------------------------------------


def test_openai_chat_completion(server: FakeLLMServer) -> None:
    server.api_key = "sk-test"
    body = chat_body("hi there", temperature=0.0, top_p=1.0, seed=1, max_tokens=64, stop=None) | {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    }
    resp = chat(server, body, key="sk-test")
    assert resp.status_code == 200
    out = resp.json()
    assert out["object"] == "chat.completion"
    assert out["id"].startswith("chatcmpl-")
    assert isinstance(out["created"], int)
    assert out["model"] == "gpt-fake"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hi there"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    out = chat(server, chat_body("a b c d", max_tokens=2), key="sk-test").json()
    assert out["choices"][0]["message"]["content"] == "echo: a"
    assert out["choices"][0]["finish_reason"] == "length"
    parts = [{"type": "text", "text": "from parts"}]
    out = chat(server, chat_body(stop=["parts"]) | {"messages": [{"role": "user", "content": parts}]}, "sk-test")
    assert out.json()["choices"][0]["message"]["content"] == "echo: from "


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_openai_wrong_key_is_401(server: FakeLLMServer, key: str | None) -> None:
    server.api_key = "sk-test"
    resp = chat(server, chat_body(), key=key)
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert {"message", "type", "code"} <= set(error)
    assert server.requests_by_outcome == {"unauthorized": 1}


def test_openai_unknown_model_is_404(server: FakeLLMServer) -> None:
    server.known_models = ["gpt-fake"]
    resp = chat(server, chat_body(model="x"))
    assert resp.status_code == 404
    assert resp.json()["error"]["message"].startswith("The model `x` does not exist")
    assert resp.json()["error"]["code"] == "model_not_found"
    assert requests.get(f"{server.url}/v1/models", timeout=10).json()["data"][0]["id"] == "gpt-fake"


def test_openai_throttle_and_server_errors(server: FakeLLMServer) -> None:
    server.fail_next("throttle")
    server.fail_next("internal")
    server.fail_next("unavailable")
    throttled = chat(server, chat_body())
    assert throttled.status_code == 429
    assert float(throttled.headers["Retry-After"]) == pytest.approx(0.05)
    assert throttled.headers["retry-after-ms"] == "50"
    assert throttled.json()["error"]["code"] == "rate_limit_exceeded"
    assert chat(server, chat_body()).status_code == 500
    assert chat(server, chat_body()).status_code == 503
    assert chat(server, chat_body()).status_code == 200
    assert server.requests_by_status == {429: 1, 500: 1, 503: 1, 200: 1}


# ---- scripted faults -------------------------------------------------------------------------------------------


def _outcomes(seed: int) -> list[int]:
    with FakeLLMServer(seed=seed, throttle_rate=0.3, error_rate_5xx=0.2) as srv:
        return [chat(srv, chat_body(f"prompt {i}")).status_code for i in range(40)]


def test_random_faults_are_reproducible() -> None:
    first = _outcomes(seed=3)
    assert first == _outcomes(seed=3)
    assert first != _outcomes(seed=4)
    assert set(first) <= {200, 429, 500, 503}
    assert 5 <= first.count(429) <= 22
    assert 2 <= first.count(500) + first.count(503) <= 16


def test_retries_of_the_same_request_draw_afresh(server: FakeLLMServer) -> None:
    server.throttle_rate = 0.6
    body = chat_body("same request")
    statuses = []
    while not statuses or statuses[-1] != 200:
        statuses.append(chat(server, body).status_code)
        assert len(statuses) < 50
    assert [r.attempt for r in server.recent_requests] == list(range(1, len(statuses) + 1))
    assert server.completed == {request_key("/v1/chat/completions", json.dumps(body)): 1}


def test_hang_makes_the_client_time_out_and_stop_stays_fast(aws_env: FakeLLMServer) -> None:
    aws_env.configure(hang_rate=1.0, hang_s=30.0)
    bedrock = client("bedrock-runtime", read_timeout=0.3, connect_timeout=1)
    with pytest.raises(ReadTimeoutError):
        bedrock.converse(modelId=MODEL, messages=USER_HI)
    assert aws_env.in_flight == 1
    started = time.monotonic()
    aws_env.stop()
    assert time.monotonic() - started < 3
    assert aws_env.completed == {}
    assert [r.outcome for r in aws_env.recent_requests] == ["hang"]


def test_hang_shorter_than_timeout_is_a_model_timeout(aws_env: FakeLLMServer) -> None:
    aws_env.configure(hang_rate=1.0, hang_s=0.05)
    with pytest.raises(ClientError) as info:
        converse()
    assert info.value.response["Error"]["Code"] == "ModelTimeoutException"


def test_answer_after_the_client_gave_up_is_not_completed(server: FakeLLMServer) -> None:
    server.latency_s = 0.5
    with pytest.raises(requests.Timeout):
        requests.post(f"{server.url}/v1/chat/completions", json=chat_body(), timeout=0.15)
    wait_idle(server)
    assert server.completed == {}
    assert [r.outcome for r in server.recent_requests] == ["client_gone"]


def test_malformed_success_bodies(aws_env: FakeLLMServer) -> None:
    aws_env.configure(malformed_rate=1.0, malformed_kind="unexpected")
    resp = converse()
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "output" not in resp
    aws_env.malformed_kind = "truncated"
    raw = chat(aws_env, chat_body())
    assert raw.status_code == 200
    with pytest.raises(ValueError):
        raw.json()
    assert aws_env.completed == {}
    assert aws_env.requests_by_outcome == {"malformed": 2}


def test_answer_callable_that_raises_is_a_500(server: FakeLLMServer) -> None:
    def boom(prompt: str, model: str) -> str:
        raise RuntimeError("bug in the test's answer")

    server.answer = boom
    resp = chat(server, chat_body())
    assert resp.status_code == 500
    (rec,) = server.recent_requests
    assert rec.outcome == "exception"
    assert rec.error is not None
    assert "bug in the test's answer" in rec.error


def test_scripting_is_validated(server: FakeLLMServer) -> None:
    with pytest.raises(ValueError):
        server.throttle_rate = 1.5
    with pytest.raises(ValueError):
        server.endpoint_shapes = {"ep": "xml"}
    with pytest.raises(ValueError):
        server.fail_next("explode")
    with pytest.raises(ValueError):
        server.configure(no_such_setting=1)
    with pytest.raises(TypeError):
        server.known_models = "just-one-string"


# ---- counters, concurrency, control routes, lifecycle ----------------------------------------------------------


def test_counters_cover_all_protocols(aws_env: FakeLLMServer) -> None:
    converse()
    converse()
    invoke("ep", {"inputs": "x"})
    body = chat_body("counted")
    chat(aws_env, body)
    assert aws_env.requests_total == 4
    assert aws_env.requests_by_protocol == {"bedrock": 2, "sagemaker": 1, "openai": 1}
    assert aws_env.completed[request_key("/v1/chat/completions", json.dumps(body))] == 1
    converse_key = request_key(f"/model/{MODEL}/converse", json.dumps({"messages": USER_HI}))
    assert aws_env.duplicates == {converse_key: 2}
    assert aws_env.recent_bodies[-1] == body
    stats = aws_env.stats()
    assert stats["completed_total"] == 4
    assert stats["duplicates"] == {converse_key: 2}
    assert len(stats["recent"]) == 4
    json.dumps(stats)
    aws_env.reset()
    assert (aws_env.requests_total, aws_env.completed, aws_env.recent_requests) == (0, {}, [])


def test_concurrent_requests_are_served_in_parallel(server: FakeLLMServer) -> None:
    server.latency_s = 0.3
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: chat(server, chat_body(f"p{i}")).status_code, range(8)))
    assert statuses == [200] * 8
    assert time.monotonic() - started < 1.5
    assert server.max_in_flight >= 4
    assert sum(server.completed.values()) == 8
    assert server.duplicates == {}


def test_control_routes(server: FakeLLMServer) -> None:
    cfg = requests.post(
        f"{server.url}/_fake/config",
        json={"throttle_rate": 1.0, "known_models": ["m"], "answer": {"q": "a"}, "fail_next": ["internal"]},
        timeout=10,
    ).json()
    assert (cfg["throttle_rate"], cfg["known_models"], cfg["fail_next"]) == (1.0, ["m"], ["internal"])
    assert chat(server, chat_body("q", model="m")).status_code == 500
    assert chat(server, chat_body("q", model="m")).status_code == 429
    requests.post(f"{server.url}/_fake/config", json={"throttle_rate": 0}, timeout=10).raise_for_status()
    assert chat(server, chat_body("q", model="m")).json()["choices"][0]["message"]["content"] == "a"
    bad = requests.post(f"{server.url}/_fake/config", json={"throttle_rate": 2}, timeout=10)
    assert bad.status_code == 400
    stats = requests.get(f"{server.url}/_fake/stats?recent=1", timeout=10).json()
    assert stats["requests"] == 3
    assert stats["by_status"] == {"500": 1, "429": 1, "200": 1}
    assert len(stats["recent"]) == 1
    assert requests.post(f"{server.url}/_fake/reset", timeout=10).json() == {"ok": True}
    assert requests.get(f"{server.url}/_fake/stats", timeout=10).json()["requests"] == 0


def test_stop_closes_keepalive_connections_and_the_port() -> None:
    srv = FakeLLMServer().start()
    url, port = srv.url, srv.port
    session = requests.Session()
    assert session.post(f"{url}/v1/chat/completions", json=chat_body(), timeout=10).status_code == 200
    before = threading.active_count()
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2
    assert threading.active_count() < before
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    session.close()


def test_cli_process_serves_all_protocols_and_dies_on_kill_9(aws_env: FakeLLMServer, monkeypatch: Any) -> None:
    with FakeLLMServerProcess("--endpoint", "ep=lmi_dict", "--known-model", MODEL, "--latency", "0.01") as proc:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", proc.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", proc.url)
        assert converse()["output"]["message"]["content"][0]["text"] == "echo: hi there"
        assert invoke("ep", {"inputs": "x"}) == {"generated_text": "echo: x"}
        assert requests.post(f"{proc.url}/chat/completions", json=chat_body(model=MODEL), timeout=10).ok
        stats = proc.stats()
        assert stats["by_protocol"] == {"bedrock": 1, "sagemaker": 1, "openai": 1}
        assert stats["completed_total"] == 3
        assert proc.configure(throttle_rate=1.0)["throttle_rate"] == 1.0
        with pytest.raises(ClientError) as info:
            converse()
        assert info.value.response["Error"]["Code"] == "ThrottlingException"
        proc.reset()
        assert proc.stats()["requests"] == 0
        proc.kill()
        assert proc.proc is not None
        assert proc.proc.returncode == -9
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{proc.url}/v1/chat/completions", json=chat_body(), timeout=2)
    assert aws_env.requests_total == 0
