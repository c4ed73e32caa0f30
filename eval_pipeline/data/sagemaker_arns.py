"""Reading SageMaker ARNs: model packages, model package groups, and hub content (AI Registry datasets, JumpStart
models), as the LLM-as-judge notebook passes them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARN = re.compile(r"^arn:(?P<partition>aws[\w-]*):sagemaker:(?P<region>[\w-]+):(?P<account>[^:]*):(?P<resource>.+)$")


@dataclass(frozen=True)
class SageMakerArn:
    """The parts of ``arn:<partition>:sagemaker:<region>:<account>:<kind>/<path>``."""

    arn: str
    partition: str
    region: str
    account: str
    kind: str
    path: tuple[str, ...]


def parse_arn(text: str) -> SageMakerArn | None:
    """The ARN's parts, or None when ``text`` is not a SageMaker ARN."""
    match = _ARN.match(text.strip())
    if match is None or "/" not in match["resource"]:
        return None
    kind, _, rest = match["resource"].partition("/")
    return SageMakerArn(arn=text.strip(), partition=match["partition"], region=match["region"],
                        account=match["account"], kind=kind, path=tuple(rest.split("/")))


def model_package_arn(text: str) -> SageMakerArn | None:
    """A versioned model package ARN (``…:model-package/<group>/<version>``; an unversioned package has one part)."""
    arn = parse_arn(text)
    return arn if arn is not None and arn.kind == "model-package" and 1 <= len(arn.path) <= 2 else None


@dataclass(frozen=True)
class HubContentRef:
    """One hub content version: what ``DescribeHubContent`` takes."""

    arn: str
    region: str
    hub: str
    content_type: str
    name: str
    version: str | None


def hub_content_arn(text: str, content_type: str | None = None) -> HubContentRef | None:
    """``…:hub-content/<hub>/<type>/<name>[/<version>]`` (e.g. an AI Registry dataset,
    ``hub-content/AIRegistry/DataSet/gen-qa/1.0.1``), of ``content_type`` when given; else None."""
    arn = parse_arn(text)
    if arn is None or arn.kind != "hub-content" or len(arn.path) not in (3, 4):
        return None
    hub, kind, name = arn.path[:3]
    if content_type is not None and kind != content_type:
        return None
    return HubContentRef(arn=arn.arn, region=arn.region, hub=hub, content_type=kind, name=name,
                         version=arn.path[3] if len(arn.path) == 4 else None)


def describe_hub_content(client: object, ref: HubContentRef) -> dict:
    """``DescribeHubContent`` for ``ref`` (its newest version when the ARN names none)."""
    arguments = {"HubName": ref.hub, "HubContentType": ref.content_type, "HubContentName": ref.name}
    if ref.version:
        arguments["HubContentVersion"] = ref.version
    return client.describe_hub_content(**arguments)  # type: ignore[attr-defined,no-any-return]
