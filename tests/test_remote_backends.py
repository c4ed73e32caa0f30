"""Bedrock, SageMaker and OpenAI-compatible backends through their real clients against a fake on 127.0.0.1."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.errors import EvalInputError
from eval_pipeline.execution import plan_suite, run_suite
from eval_pipeline.inference.backends import build_remote_sampler
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.remote import RemoteSampler
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.spec import ModelSpec
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes import FakeLLMServer

QUESTIONS = {f"What is {i} plus {i}?": str(2 * i) for i in range(12)}
PROFILE = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x:0"


@pytest.fixture
def fake(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer=dict(QUESTIONS), known_models={"amazon.nova-micro-v1:0", PROFILE, "served-model"},
                       known_endpoints={"tgi-ep", "lmi-ep", "chat-ep"},
                       endpoint_shapes={"tgi-ep": "tgi_list", "lmi-ep": "lmi_dict", "chat-ep": "openai"},
                       retry_after_s=0.05) as server:
        for name, value in {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": server.url,
                            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url, "FAKE_KEY": "sk-test"}.items():
            monkeypatch.setenv(name, value)
        yield server


def suite_file(folder: Path, models: str) -> Path:
    (folder / "evals").mkdir(parents=True, exist_ok=True)
    with (folder / "qa.jsonl").open("w") as handle:
        for i, (question, answer) in enumerate(QUESTIONS.items()):
            handle.write(json.dumps({"id": f"q{i}", "prompt": question, "answer": answer,
                                     "category": "even" if i % 2 == 0 else "odd"}) + "\n")
    path = folder / "evals" / "remote.yaml"
    path.write_text(f"suite: remote\ndataset: {{uri: qa.jsonl}}\nmodels:\n{models}\n"
                    "generation: {max_tokens: 16}\nscorers: [exact_match]\nbreakdown_keys: [category]\n")
    return path


def request(prompt: str, system: str | None = "be brief") -> GenerationRequest:
    messages = ({"role": "system", "content": system},) if system else ()
    return GenerationRequest("s", 0, (*messages, {"role": "user", "content": prompt}))


def sampler(**spec: Any) -> RemoteSampler:
    return build_remote_sampler(ModelSpec(name="m", **spec))


def test_bedrock_suite_end_to_end_with_tokens_cost_and_cache(eval_home: Path, fake: FakeLLMServer) -> None:
    path = suite_file(eval_home.parent / "p", "  - {name: nova, backend: bedrock, model: amazon.nova-micro-v1:0, "
                      "n_concurrent: 4, price: {input_per_1m: 0.035, output_per_1m: 0.14}}")
    suite = load_suite(path)
    [plan] = plan_suite(suite)
    assert (plan.requests, plan.cached, plan.to_send) == (12, 0, 12) and plan.est_cost_usd > 0
    assert fake.requests_total == 0  # the dry run sent nothing

    result = run_suite(suite, local_instance())
    assert result.success, result.models[0].error
    overall = result.metrics[result.metrics["breakdown_key"].isna()].iloc[0]
    assert overall["value"] == 1.0 and overall["n"] == 12 and overall["errors"] == 0
    generations = pd.read_parquet(result.models[0].outputs["generations"])
    assert (generations["tokens_in"] > 0).all() and (generations["tokens_out"] == 1).all()
    expected = (generations["tokens_in"] * 0.035 + generations["tokens_out"] * 0.14) / 1e6
    assert generations["cost_usd"].to_numpy() == pytest.approx(expected.to_numpy())
    run = MlflowClient(default_tracking_uri()).get_run(result.models[0].mlflow_run_id)
    assert run.data.metrics["usage.cost_usd"] == pytest.approx(expected.sum())
    assert run.data.metrics["usage.tokens_in"] == generations["tokens_in"].sum()
    assert result.models[0].generation["cost_usd"] == pytest.approx(expected.sum(), rel=1e-5)  # 6 digits shown

    sent = fake.requests_total
    again = run_suite(suite, local_instance())
    assert again.models[0].generation["cached"] == 12 and fake.requests_total == sent
    assert plan_suite(suite)[0].to_send == 0


def test_throttling_and_5xx_lose_and_repeat_nothing(fake: FakeLLMServer) -> None:
    fake.configure(throttle_rate=0.25, error_rate_5xx=0.15)
    bedrock = sampler(backend="bedrock", model="amazon.nova-micro-v1:0", n_concurrent=8, max_attempts=12)
    bedrock.retry = type(bedrock.retry)(max_attempts=12, base_delay_s=0.01, max_delay_s=0.1)
    prompts = [f"question {i}" for i in range(60)]
    out = bedrock.generate([request(p) for p in prompts], GenerationParams(max_tokens=8))
    assert [c.error for c in out] == [None] * 60
    assert [c.output for c in out] == [f"echo: {p}" for p in prompts]
    assert fake.requests_by_status[429] > 0 and fake.requests_total > 60
    assert fake.duplicates == {}  # no request was answered twice


def test_timeouts_are_retried(fake: FakeLLMServer) -> None:
    fake.fail_next("hang", 2, protocol="openai")
    fake.hang_s = 1.5
    openai = sampler(backend="openai", base_url=f"{fake.url}/v1", model="served-model", timeout_s=0.3)
    openai.retry = type(openai.retry)(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)
    [completion] = openai.generate([request("What is 7 plus 7?")], GenerationParams())
    assert completion.output == "14" and fake.requests_by_protocol["openai"] == 3


def test_unknown_bedrock_model_surfaces_the_service_error(fake: FakeLLMServer) -> None:
    [completion] = sampler(backend="bedrock", model="no.such-model").generate([request("hi")], GenerationParams())
    assert completion.output is None
    assert "model no.such-model: ValidationException (HTTP 400)" in completion.error
    assert fake.requests_total == 1  # not retried


def test_bedrock_inference_profile_arn(fake: FakeLLMServer) -> None:
    [completion] = sampler(backend="bedrock", model=PROFILE).generate([request("What is 3 plus 3?")],
                                                                      GenerationParams())
    assert completion.output == "6" and completion.finish_reason == "stop"


@pytest.mark.parametrize(("endpoint", "request_format"), [("tgi-ep", "tgi"), ("lmi-ep", "tgi"),
                                                           ("chat-ep", "messages")])
def test_sagemaker_response_shapes(fake: FakeLLMServer, endpoint: str, request_format: str) -> None:
    sm = sampler(backend="sagemaker", endpoint=endpoint, request_format=request_format)
    [completion] = sm.generate([request("What is 4 plus 4?", system=None)], GenerationParams())
    assert completion.error is None and completion.output.strip() == "8"
    body = fake.recent_bodies[-1]
    assert ("messages" in body) == (request_format == "messages")
    if request_format == "tgi":
        assert body["parameters"]["max_new_tokens"] == 64 and body["inputs"] == "What is 4 plus 4?"


def test_sagemaker_inference_component_and_custom_template(fake: FakeLLMServer) -> None:
    fake.known_inference_components = {"ic-1"}
    sm = sampler(backend="sagemaker", endpoint="lmi-ep", inference_component="ic-1", request_format="custom",
                 request_template='{"inputs": {{prompt}}, "parameters": {"max_new_tokens": {{max_tokens}}}}',
                 response_path="generated_text")
    [completion] = sm.generate([request("What is 5 plus 5?", system=None)], GenerationParams(max_tokens=3))
    assert completion.output.strip() == "10"
    assert fake.recent_requests[-1].component == "ic-1"


def test_sagemaker_unparseable_body_is_an_error_row_naming_the_endpoint(fake: FakeLLMServer) -> None:
    fake.configure(malformed_rate=1.0, malformed_kind="unexpected")
    [completion] = sampler(backend="sagemaker", endpoint="tgi-ep").generate([request("x")], GenerationParams())
    assert completion.output is None
    assert completion.error.startswith("sagemaker: endpoint tgi-ep: response we cannot parse; body starts b'{")


def test_openai_server_with_retry_after_and_errors(fake: FakeLLMServer) -> None:
    fake.api_key = "sk-test"
    openai = sampler(backend="openai", base_url=f"{fake.url}/v1", model="served-model", api_key_env="FAKE_KEY")
    fake.fail_next("throttle", 2, protocol="openai")
    [completion] = openai.generate([request("What is 6 plus 6?")], GenerationParams())
    assert completion.output == "12" and completion.tokens_out == 1
    assert fake.requests_by_status[429] == 2
    unknown = sampler(backend="openai", base_url=f"{fake.url}/v1", model="nope", api_key_env="FAKE_KEY")
    [failed] = unknown.generate([request("x")], GenerationParams())
    assert "HTTP 404" in failed.error and "nope" in failed.error


def test_missing_credentials_fail_before_any_request(fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    path = suite_file(tmp_path / "p", "  - {name: nova, backend: bedrock, model: amazon.nova-micro-v1:0}")
    with pytest.raises(EvalInputError, match="no AWS credentials found for bedrock-runtime"):
        plan_suite(load_suite(path))
    monkeypatch.delenv("FAKE_KEY")
    with pytest.raises(EvalInputError, match="FAKE_KEY is not set"):
        sampler(backend="openai", base_url=fake.url, model="served-model", api_key_env="FAKE_KEY").preflight()
    assert fake.requests_total == 0


def test_remote_specs_need_their_keys() -> None:
    with pytest.raises(ValueError, match="a sagemaker model needs 'endpoint'"):
        ModelSpec(name="m", backend="sagemaker")
    with pytest.raises(ValueError, match="an openai model needs 'model'"):
        ModelSpec(name="m", backend="openai", base_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="request_format 'custom' needs"):
        ModelSpec(name="m", backend="sagemaker", endpoint="e", request_format="custom")


def test_batch_mode_needs_bedrock_a_bucket_and_a_role() -> None:
    with pytest.raises(ValueError, match="mode 'batch' is for bedrock models"):
        ModelSpec(name="m", backend="bedrock", model="x", mode="batch")
    with pytest.raises(ValueError, match="mode 'batch' is for bedrock models"):
        ModelSpec(name="m", backend="sagemaker", endpoint="e", mode="batch", batch_s3_uri="s3://b/p",
                  batch_role_arn="arn")


def test_stop_sequences_reach_each_service(fake: FakeLLMServer) -> None:
    params = GenerationParams(stop=("\n\n",))
    sampler(backend="bedrock", model="amazon.nova-micro-v1:0").generate([request("x")], params)
    assert fake.recent_bodies[-1]["inferenceConfig"]["stopSequences"] == ["\n\n"]
    sampler(backend="openai", base_url=f"{fake.url}/v1", model="served-model").generate([request("x")], params)
    assert fake.recent_bodies[-1]["stop"] == ["\n\n"]
    sampler(backend="sagemaker", endpoint="tgi-ep").generate([request("x")], params)
    assert fake.recent_bodies[-1]["parameters"]["stop"] == ["\n\n"]


@pytest.mark.parametrize("backend", ["bedrock", "openai"])
def test_malformed_bodies_are_error_rows(fake: FakeLLMServer, backend: str) -> None:
    fake.configure(malformed_rate=1.0, malformed_kind="unexpected")
    spec = ({"model": "amazon.nova-micro-v1:0"} if backend == "bedrock"
            else {"base_url": f"{fake.url}/v1", "model": "served-model"})
    [completion] = sampler(backend=backend, **spec).generate([request("x")], GenerationParams())
    assert completion.output is None and "response we cannot parse" in completion.error
    if backend == "openai":  # botocore drops unknown members before we see a Converse body
        assert "unexpected" in completion.error  # the body's start is quoted


def test_shared_price_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eval_pipeline.inference.backends import model_price

    table = tmp_path / "prices.yaml"
    table.write_text("amazon.nova-micro-v1:0: {input_per_1m: 0.035, output_per_1m: 0.14}\n"
                     "tgi-ep: {input_per_1m: 0, output_per_1m: 1.5}\n")
    monkeypatch.setenv("EVAL_PIPELINE_PRICES", str(table))
    nova = ModelSpec(name="n", backend="bedrock", model="amazon.nova-micro-v1:0")
    assert model_price(nova).cost(1000, 1000) == pytest.approx((35 + 140) / 1e6)
    own = nova.model_copy(update={"price": {"input_per_1m": 1.0, "output_per_1m": 1.0}})
    assert model_price(ModelSpec.model_validate(own.model_dump())).cost(10**6, 0) == 1.0
    assert model_price(ModelSpec(name="e", backend="sagemaker", endpoint="tgi-ep")).output_per_1m == 1.5
    assert model_price(ModelSpec(name="x", backend="bedrock", model="other")) is None
    table.write_text("m: {input_per_1m: cheap}\n")
    with pytest.raises(EvalInputError, match=r"prices\.yaml: field 'm': needs numeric"):
        model_price(nova)
