"""What to host for a model given by ARN: a model package (``DescribeModelPackage``: its container image, model
artifacts, environment, instance types and the base model it was fine-tuned from) or a JumpStart hub model
(``DescribeHubContent``: its hosting image and artifacts)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from eval_pipeline.data.sagemaker_arns import describe_hub_content, hub_content_arn, model_package_arn
from eval_pipeline.errors import EvalInputError
from eval_pipeline.registry import Registry

DEFAULT_INSTANCE_TYPE = "ml.g5.2xlarge"
"""The endpoint's instance type when neither the spec nor the package names one."""


@dataclass(frozen=True)
class BaseModelRef:
    """The JumpStart model a package was fine-tuned from (its container's ``BaseModel``)."""

    hub_content_name: str
    hub_content_version: str | None = None


@dataclass(frozen=True)
class HostingSpec:
    """Everything ``CreateModel`` needs to serve one model, and where it came from."""

    source_arn: str
    image: str
    model_data_url: str | None
    environment: dict[str, str] = field(default_factory=dict)
    instance_types: tuple[str, ...] = ()
    group: str | None = None
    base_model: BaseModelRef | None = None

    def instance_type(self, override: str | None = None) -> str:
        return override or (self.instance_types[0] if self.instance_types else DEFAULT_INSTANCE_TYPE)

    def with_artifact(self, model_artifact: str | None) -> HostingSpec:
        """The same hosting with another ``ModelDataUrl`` (the seed's ``model_artifact``)."""
        if not model_artifact:
            return self
        return HostingSpec(self.source_arn, self.image, model_artifact, self.environment, self.instance_types,
                           self.group, self.base_model)


Resolver = Callable[[object, str], HostingSpec]
"""(a boto3 SageMaker client, the ARN) → what to host."""


def _package(client: object, arn: str) -> HostingSpec:
    described = client.describe_model_package(ModelPackageName=arn)  # type: ignore[attr-defined]
    containers = (described.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers:
        raise EvalInputError(f"model package {arn} has no InferenceSpecification containers: nothing to host",
                             field="model")
    container = containers[0]
    url = container.get("ModelDataUrl") or (
        ((container.get("ModelDataSource") or {}).get("S3DataSource") or {}).get("S3Uri"))
    base = container.get("BaseModel") or {}
    spec = described.get("InferenceSpecification") or {}
    return HostingSpec(
        source_arn=described.get("ModelPackageArn") or arn, image=container["Image"], model_data_url=url,
        environment=dict(container.get("Environment") or {}),
        instance_types=tuple(spec.get("SupportedRealtimeInferenceInstanceTypes") or ()),
        group=described.get("ModelPackageGroupName"),
        base_model=BaseModelRef(base["HubContentName"], base.get("HubContentVersion"))
        if base.get("HubContentName") else None)


def _hub_model(client: object, arn: str) -> HostingSpec:
    ref = hub_content_arn(arn, "Model")
    assert ref is not None
    described = describe_hub_content(client, ref)
    document = json.loads(described.get("HubContentDocument") or "{}")
    image = document.get("HostingEcrUri")
    if not image:
        raise EvalInputError(f"hub model {arn}: its document names no HostingEcrUri: nothing to host", field="model")
    default = document.get("DefaultInferenceInstanceType")
    return HostingSpec(source_arn=described.get("HubContentArn") or arn, image=image,
                       model_data_url=document.get("HostingArtifactUri"),
                       environment={str(k): str(v) for k, v in (document.get("InferenceEnvironmentVariables") or {})
                                    .items()},
                       instance_types=(default,) if default else ())


HOSTED_ARN_KINDS: Registry[Resolver] = Registry("hosted model ARN kind")
HOSTED_ARN_KINDS.register("model-package", _package)
HOSTED_ARN_KINDS.register("hub-content", _hub_model)


def hosted_arn_kind(text: str) -> str | None:
    """``model-package`` or ``hub-content`` (a JumpStart model) when ``text`` is such an ARN, else None."""
    if model_package_arn(text) is not None:
        return "model-package"
    if hub_content_arn(text, "Model") is not None:
        return "hub-content"
    return None


def resolve_hosting(client: object, arn: str) -> HostingSpec:
    """What to host for ``arn`` (a model package or a JumpStart hub model), read through ``client``."""
    kind = hosted_arn_kind(arn)
    if kind is None:
        raise EvalInputError(f"{arn!r} is neither a model package ARN nor a hub-content Model ARN", field="model")
    return HOSTED_ARN_KINDS.get(kind)(client, arn)


def hub_model_arn(region: str, name: str, version: str | None = None, *, hub: str = "SageMakerPublicHub",
                  partition: str = "aws") -> str:
    """The public hub's ARN of a JumpStart model (account ``aws``), e.g. a package's base model."""
    return f"arn:{partition}:sagemaker:{region}:aws:hub-content/{hub}/Model/{name}" + (f"/{version}" if version
                                                                                      else "")
