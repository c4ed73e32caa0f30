"""A model package served on a temporary SageMaker endpoint: resolved from DescribeModelPackage, created for the run,
used, deleted after (also on failure and after a kill -9, by a later run that finds it by its tags); Nova JumpStart
names routed to Bedrock inference profiles; AI Registry dataset ARNs resolved to their S3 data. All through real
boto3 clients against moto, with hub content and the inference data plane on local servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from eval_pipeline.data.hub_datasets import resolve_dataset_arn
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import backend
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.model_package import resolve_hosting
from eval_pipeline.inference.nova_models import NOVA_MODELS, nova_inference_profile, profile_prefix
from eval_pipeline.inference.temporary_endpoint import (
    HOST_TAG_KEY,
    PID_TAG_KEY,
    TEMPORARY_TAG,
    EndpointStartError,
    TemporaryEndpoint,
    remove_abandoned_endpoints,
)
from eval_pipeline.sdk.models import base_model_of, resolve_model
from tests.clocks import SettableClock
from tests.fakes import FakeLLMServer
from tests.fakes.sagemaker_control import SageMakerControlPlane
from tests.sagemaker_doubles import ACCOUNT, IMAGE, EndpointWitness, create_model_package, sagemaker_resources

REPO = Path(__file__).resolve().parent.parent
REGION = "us-west-2"


@pytest.fixture
def plane(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SageMakerControlPlane]:
    with SageMakerControlPlane(aws_env, region=REGION) as control:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", control.url)
        yield control


@pytest.fixture
def serving(plane: SageMakerControlPlane, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[FakeLLMServer, EndpointWitness]]:
    witness = EndpointWitness(regions=(REGION, "us-east-1"))
    with FakeLLMServer(answer=witness) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server, witness


def _request(text: str = "What is 2 + 2?") -> GenerationRequest:
    return GenerationRequest(sample_id="q0", sample_index=0, messages=({"role": "user", "content": text},))


# --- the package → what to host ---------------------------------------------------------------------------------


def test_a_package_resolves_to_its_image_artifacts_instance_type_and_base_model(plane: SageMakerControlPlane) -> None:
    arn = create_model_package(REGION, "tuned", versions=2, base_model="nova-textgeneration-lite",
                               artifact="s3://models-bucket/v2/model.tar.gz")
    hosting = resolve_hosting(boto3.client("sagemaker", region_name=REGION), arn)
    assert arn.endswith(":model-package/tuned/2")
    assert (hosting.image, hosting.model_data_url, hosting.group) == (IMAGE, "s3://models-bucket/v2/model.tar.gz",
                                                                      "tuned")
    assert hosting.instance_type() == "ml.g4dn.xlarge" and hosting.instance_type("ml.p4d.24xlarge") == "ml.p4d.24xlarge"
    assert hosting.base_model is not None and hosting.base_model.hub_content_name == "nova-textgeneration-lite"
    assert hosting.with_artifact("s3://other/model.tar.gz").model_data_url == "s3://other/model.tar.gz"
    # the SDK's string: the package's backend and region; its base model: Nova lite through us-west-2's profile
    spec = resolve_model(arn)
    assert (spec.backend, spec.model, spec.region, spec.name) == ("sagemaker_package", arn, REGION, "tuned-2")
    base = base_model_of(spec)
    assert base is not None and (base.backend, base.model) == ("bedrock", "us.amazon.nova-lite-v1:0")


def test_a_jumpstart_base_model_is_hosted_from_the_public_hubs_document(plane: SageMakerControlPlane) -> None:
    plane.add_hub_content("SageMakerPublicHub", "Model", "meta-textgeneration-llama-3-2-1b-instruct", "1.0.0", {
        "HostingEcrUri": IMAGE, "HostingArtifactUri": "s3://jumpstart/llama-3-2-1b/", "DefaultInferenceInstanceType":
        "ml.g4dn.xlarge"}, account="aws")
    arn = create_model_package(REGION, "llama-tuned", base_model="meta-textgeneration-llama-3-2-1b-instruct")
    base = base_model_of(resolve_model(arn))
    assert base is not None and base.backend == "sagemaker_package"
    hosting = resolve_hosting(boto3.client("sagemaker", region_name=REGION), base.model or "")
    assert (hosting.image, hosting.model_data_url, hosting.instance_type()) == (
        IMAGE, "s3://jumpstart/llama-3-2-1b/", "ml.g4dn.xlarge")


# --- the temporary endpoint --------------------------------------------------------------------------------------


def test_the_endpoint_exists_in_service_while_answering_and_is_gone_after(
        serving: tuple[FakeLLMServer, EndpointWitness]) -> None:
    server, witness = serving
    arn = create_model_package(REGION, "tuned")
    spec = resolve_model(arn)
    sampler = backend(spec.backend).build(spec, None, None)
    sampler.preflight()
    assert sagemaker_resources(REGION) == {"endpoints": [], "configs": [], "models": []}
    completions = sampler.generate([_request("a"), _request("b")], GenerationParams(max_tokens=16))
    assert [c.output for c in completions] == [witness.answer] * 2 and all(c.error is None for c in completions)
    names = {name for name, _ in witness.seen}
    assert len(names) == 1 and [status for _, status in witness.seen] == ["InService", "InService"]
    assert {r.target for r in server.recent_requests if r.protocol == "sagemaker"} == names
    assert sagemaker_resources(REGION) == {"endpoints": [], "configs": [], "models": []}  # endpoint, config, model
    assert "endpoint" not in sampler.identity()  # a new endpoint name each run: cached answers stay valid


def test_a_failed_start_deletes_what_it_had_created(plane: SageMakerControlPlane) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    hosting = resolve_hosting(client, create_model_package(REGION, "tuned"))
    endpoint = TemporaryEndpoint(client, hosting, instance_type="ml.g5.2xlarge")  # moto refuses g5 endpoint configs
    with pytest.raises(Exception, match="g5"):
        endpoint.start()
    assert plane.operations["CreateModel"] == 1 and plane.operations["DeleteModel"] == 1
    assert sagemaker_resources(REGION) == {"endpoints": [], "configs": [], "models": []}


def test_only_endpoints_of_dead_owners_on_this_host_are_removed(plane: SageMakerControlPlane) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    hosting = resolve_hosting(client, create_model_package(REGION, "tuned"))
    mine = TemporaryEndpoint(client, hosting).start()  # owned by this (live) process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()

    def leftover(pid: str, host: str | None = None) -> str:
        other = TemporaryEndpoint(client, hosting).start()
        arn = client.describe_endpoint(EndpointName=other.name)["EndpointArn"]
        client.add_tags(ResourceArn=arn, Tags=[{"Key": PID_TAG_KEY, "Value": pid}] + (
            [{"Key": HOST_TAG_KEY, "Value": host}] if host else []))
        return other.name

    abandoned = leftover(dead)
    elsewhere = leftover(dead, host="another-host")
    client.create_endpoint_config(EndpointConfigName="evaltmp-untagged", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": mine.name, "InitialInstanceCount": 1,
        "InstanceType": "ml.g4dn.xlarge"}])
    client.create_endpoint(EndpointName="evaltmp-untagged", EndpointConfigName="evaltmp-untagged")
    assert remove_abandoned_endpoints(client) == [abandoned]
    left = sagemaker_resources(REGION)
    assert sorted(left["endpoints"]) == sorted([mine.name, elsewhere, "evaltmp-untagged"])
    assert abandoned not in left["configs"] and abandoned not in left["models"]
    tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=client.describe_endpoint(
        EndpointName=mine.name)["EndpointArn"])["Tags"]}
    assert tags[TEMPORARY_TAG] == "true" and tags[PID_TAG_KEY] == str(os.getpid())
    mine.delete()


@pytest.mark.slow
def test_an_endpoint_left_by_a_killed_run_is_removed_by_the_next(
        serving: tuple[FakeLLMServer, EndpointWitness]) -> None:
    _server, witness = serving
    arn = create_model_package(REGION, "tuned")
    witness.hold = True
    child = subprocess.Popen([sys.executable, "-m", "tests.temporary_endpoint_worker", arn], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert witness.arrived.wait(60), child.stderr.read().decode() if child.poll() is not None else "no request"
        leftover = witness.seen[0][0]
        assert witness.seen[0][1] == "InService"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        witness.released.set()
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert sagemaker_resources(REGION) == {"endpoints": [leftover], "configs": [leftover], "models": [leftover]}
    witness.hold = False
    spec = resolve_model(arn)
    sampler = backend(spec.backend).build(spec, None, None)
    sampler.preflight()  # the next run: the dead run's endpoint, config and model go first
    assert sagemaker_resources(REGION) == {"endpoints": [], "configs": [], "models": []}
    assert sampler.generate([_request()], GenerationParams(max_tokens=16))[0].output == witness.answer
    assert len({name for name, _ in witness.seen}) == 2
    assert sagemaker_resources(REGION) == {"endpoints": [], "configs": [], "models": []}


# --- Nova names and dataset ARNs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "region", "profile"), [
    ("nova-textgeneration-lite", "us-east-1", "us.amazon.nova-lite-v1:0"),
    ("nova-textgeneration-micro", "us-west-2", "us.amazon.nova-micro-v1:0"),
    ("nova-textgeneration-pro", "eu-west-1", "eu.amazon.nova-pro-v1:0"),
    ("nova-textgeneration-lite", "ap-northeast-1", "apac.amazon.nova-lite-v1:0"),
    ("nova-textgeneration-premier", "us-gov-west-1", "us-gov.amazon.nova-premier-v1:0"),
])
def test_nova_jumpstart_names_route_to_the_regions_inference_profile(name: str, region: str, profile: str) -> None:
    assert nova_inference_profile(name, region) == profile


def test_the_nova_tables_are_registries_and_the_sdk_uses_the_sessions_region(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "nova-textgeneration-lite" in NOVA_MODELS
    with pytest.raises(ValueError, match="sa-east-1"):
        profile_prefix("sa-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    spec = resolve_model("nova-textgeneration-lite")
    assert (spec.backend, spec.model, spec.name) == ("bedrock", "eu.amazon.nova-lite-v1:0", "nova-textgeneration-lite")


def test_a_dataset_arn_resolves_to_the_s3_data_its_document_names(plane: SageMakerControlPlane) -> None:
    arn = plane.add_hub_content("AIRegistry", "DataSet", "gen-qa-test-content", "1.0.1", {
        "DatasetS3Bucket": "datasets-bucket", "DatasetS3Prefix": "gen-qa/gen_qa.jsonl"})
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hub-content/AIRegistry/DataSet/gen-qa-test-content/1.0.1"
    assert resolve_dataset_arn(arn) == "s3://datasets-bucket/gen-qa/gen_qa.jsonl"
    with pytest.raises(EvalInputError, match="DescribeHubContent failed") as missing:
        resolve_dataset_arn(arn.replace("gen-qa-test-content", "nothing"))
    assert missing.value.field == "dataset"
    with pytest.raises(EvalInputError, match="not an AI Registry dataset ARN"):
        resolve_dataset_arn(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/tuned/1")


def test_the_sdk_takes_the_notebooks_dataset_arn_package_group_and_artifact(
        plane: SageMakerControlPlane, eval_home: Path) -> None:
    from eval_pipeline.sdk import LLMAsJudgeEvaluator

    dataset = plane.add_hub_content("AIRegistry", "DataSet", "gen-qa-test-content", "1.0.1", {
        "DatasetS3Bucket": "datasets-bucket", "DatasetS3Prefix": "gen-qa/gen_qa.jsonl"})
    package = create_model_package(REGION, "tuned", base_model="nova-textgeneration-lite")
    arguments = {"evaluator_model": "amazon.nova-pro-v1:0", "builtin_metrics": ["Correctness"], "dataset": dataset}
    evaluator = LLMAsJudgeEvaluator(model=package, model_package_group=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
                                    "model-package-group/tuned", model_artifact="s3://ckpt/step-9/model.tar.gz",
                                    **arguments)
    config = evaluator.config()
    assert (config["dataset"], config["dataset_arn"]) == ("s3://datasets-bucket/gen-qa/gen_qa.jsonl", dataset)
    assert evaluator.model.model_artifact == "s3://ckpt/step-9/model.tar.gz"
    assert config["evaluate_base_model"] is True  # the seed's default, the base model read from the package
    assert evaluator.base_model is not None and evaluator.base_model.model == "us.amazon.nova-lite-v1:0"
    assert [m.name for m in evaluator.suite.models] == ["nova-textgeneration-lite", "tuned-1"]
    assert evaluator.suite.baseline == "nova-textgeneration-lite"
    alone = LLMAsJudgeEvaluator(model="nova-textgeneration-lite", **arguments)  # no package: nothing to compare
    assert alone.evaluate_base_model is False and [m.model for m in alone.suite.models] == ["us.amazon.nova-lite-v1:0"]
    with pytest.raises(EvalInputError, match="not in group 'other'") as wrong_group:
        LLMAsJudgeEvaluator(model=package, model_package_group="other", **arguments)
    assert wrong_group.value.field == "model_package_group"
    with pytest.raises(EvalInputError, match="applies to a model package"):
        LLMAsJudgeEvaluator(model="nova-textgeneration-lite", model_artifact="s3://x/model.tar.gz", **arguments)


def test_the_endpoint_is_waited_for_on_the_injected_clock_and_removed_when_it_never_serves(
        plane: SageMakerControlPlane) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    hosting = resolve_hosting(client, create_model_package(REGION, "tuned"))
    clock = SettableClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    plane.endpoint_statuses.extend(["Creating", "Creating"])
    with TemporaryEndpoint(client, hosting, poll_s=20, timeout_s=100, sleep=sleep, clock=clock) as endpoint:
        assert slept == [20, 20] and client.describe_endpoint(EndpointName=endpoint.name)["EndpointStatus"]
    assert sagemaker_resources(REGION) == {"endpoints": [], "configs": [], "models": []}

    plane.endpoint_statuses.extend(["Creating"] * 10)
    slept.clear()
    with pytest.raises(EndpointStartError, match=r"not InService after 100 s \(status Creating\)"):
        TemporaryEndpoint(client, hosting, poll_s=20, timeout_s=100, sleep=sleep, clock=clock).start()
    assert slept == [20] * 5
    plane.endpoint_statuses.clear()
    plane.endpoint_statuses.append("Failed")
    with pytest.raises(EndpointStartError, match="is Failed"):
        TemporaryEndpoint(client, hosting, sleep=sleep, clock=clock).start()
    assert sagemaker_resources(REGION) == {"endpoints": [], "configs": [], "models": []}
