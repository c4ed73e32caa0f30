"""The AWS doubles the notebook's custom-model path runs against: moto (S3, model packages, models, endpoint configs,
endpoints, tags) behind ``SageMakerControlPlane`` (which adds hub content), and ``FakeLLMServer`` for Bedrock
Converse and SageMaker InvokeEndpoint. ``EndpointWitness`` is the inference server's view: for every request to a
temporary endpoint it asks the control plane (DescribeEndpoint) whether that endpoint exists and is InService."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3

from eval_pipeline.inference.temporary_endpoint import NAME_PREFIX

ACCOUNT = "123456789012"
IMAGE = "763104351884.dkr.ecr.us-west-2.amazonaws.com/djl-inference:0.33.0-lmi15.0.0-cu128"
INSTANCE_TYPE = "ml.g4dn.xlarge"
"""moto's CreateEndpointConfig still rejects ml.g5.* (a stale enum), so the packages list this one."""


def create_model_package(region: str, group: str, *, versions: int = 1, base_model: str | None = None,
                         artifact: str = "s3://models-bucket/finetuned/model.tar.gz") -> str:
    """A model package group with ``versions`` packages (the last one's ARN returned), each an LMI container with
    ``artifact`` and, when given, the JumpStart ``base_model`` it was fine-tuned from."""
    client = boto3.client("sagemaker", region_name=region)
    client.create_model_package_group(ModelPackageGroupName=group)
    container: dict[str, Any] = {"Image": IMAGE, "ModelDataUrl": artifact,
                                 "Environment": {"OPTION_ROLLING_BATCH": "vllm"}}
    if base_model:
        container["BaseModel"] = {"HubContentName": base_model, "HubContentVersion": "1.0.0"}
    arn = ""
    for _ in range(versions):
        arn = client.create_model_package(ModelPackageGroupName=group, InferenceSpecification={
            "Containers": [container], "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [INSTANCE_TYPE]})["ModelPackageArn"]
    return arn


def sagemaker_resources(region: str) -> dict[str, list[str]]:
    """What exists in ``region``: endpoint, endpoint-config and model names."""
    client = boto3.client("sagemaker", region_name=region)
    return {"endpoints": [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]],
            "configs": [c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"]],
            "models": [m["ModelName"] for m in client.list_models()["Models"]]}


@dataclass
class EndpointWitness:
    """What the inference server saw of temporary endpoints: (endpoint, its DescribeEndpoint status) per request,
    asked of the control plane while the request was being answered. ``hold`` makes those requests wait (until
    ``release``) so a test can kill the process that sent them."""

    regions: tuple[str, ...]
    answer: str = "Happy to help! Here is a clear, positive answer."
    seen: list[tuple[str, str]] = field(default_factory=list)
    hold: bool = False
    released: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def owns(self, model: str) -> bool:
        return model.startswith(NAME_PREFIX)

    def __call__(self, prompt: str, model: str) -> str:
        status = "missing"
        for region in self.regions:
            try:
                status = boto3.client("sagemaker", region_name=region).describe_endpoint(
                    EndpointName=model)["EndpointStatus"]
                break
            except Exception:
                continue
        with self.lock:
            self.seen.append((model, status))
        self.arrived.set()
        if self.hold:
            self.released.wait(30)
        return self.answer
