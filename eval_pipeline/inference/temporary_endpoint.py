"""A SageMaker endpoint that lives for one run: created from a ``HostingSpec`` (CreateModel, CreateEndpointConfig,
CreateEndpoint, then waiting for InService), deleted after (endpoint, config, model), also when the run fails.

A run killed before it could delete (kill -9, out of memory) leaves them behind; each carries tags naming it
temporary and its owner (host, process), so a later run lists the endpoints by those tags and removes the ones
whose owner is gone (``remove_abandoned_endpoints``), exactly as ``process_identity`` decides for Dagster runs.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from eval_pipeline.inference.model_package import HostingSpec
from eval_pipeline.process_identity import HOST_TAG, PID_TAG, owner_gone

log = logging.getLogger(__name__)
NAME_PREFIX = "evaltmp-"
TEMPORARY_TAG, HOST_TAG_KEY, PID_TAG_KEY, SOURCE_TAG_KEY = (
    "eval-pipeline:temporary", "eval-pipeline:host", "eval-pipeline:pid", "eval-pipeline:source")
TERMINAL_FAILURES = ("Failed", "OutOfService", "Deleting")


class EndpointStartError(RuntimeError):
    """The endpoint failed, or was not InService in time (what was created has been deleted)."""


def owner_tags(source_arn: str) -> list[dict[str, str]]:
    """The tags of a temporary resource: temporary, this host and process, the ARN it serves."""
    return [{"Key": TEMPORARY_TAG, "Value": "true"}, {"Key": HOST_TAG_KEY, "Value": socket.gethostname()},
            {"Key": PID_TAG_KEY, "Value": str(os.getpid())}, {"Key": SOURCE_TAG_KEY, "Value": source_arn[:256]}]


def endpoint_name(source_arn: str) -> str:
    """A fresh name (≤ 63 characters, ``[a-zA-Z0-9-]``): the prefix, the package's name, a random suffix."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", source_arn.rsplit(":", 1)[-1].split("/", 1)[-1]).strip("-")[:40].strip("-")
    return f"{NAME_PREFIX}{stem}-{uuid.uuid4().hex[:12]}".replace("--", "-")


class TemporaryEndpoint:
    """Create with ``start()`` (or ``with``), serve requests at ``name``, ``delete()`` when done (idempotent)."""

    def __init__(self, client: Any, hosting: HostingSpec, *, instance_type: str | None = None,
                 role_arn: str | None = None, timeout_s: float = 900.0, poll_s: float = 15.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.hosting = client, hosting
        self.instance_type = hosting.instance_type(instance_type)
        self.role_arn = (role_arn or os.environ.get("EVAL_PIPELINE_SAGEMAKER_ROLE_ARN")
                         or _default_role(client, hosting.source_arn))
        self.timeout_s, self.poll_s, self.sleep, self.clock = timeout_s, poll_s, sleep, clock
        self.name = endpoint_name(hosting.source_arn)
        self.created: list[str] = []
        """What exists now, in creation order: ``model``, ``config``, ``endpoint``."""

    def start(self) -> TemporaryEndpoint:
        tags = owner_tags(self.hosting.source_arn)
        container: dict[str, Any] = {"Image": self.hosting.image, "Environment": dict(self.hosting.environment)}
        if self.hosting.model_data_url:
            container["ModelDataUrl"] = self.hosting.model_data_url
        try:
            self.client.create_model(ModelName=self.name, PrimaryContainer=container,
                                     ExecutionRoleArn=self.role_arn, Tags=tags)
            self.created.append("model")
            self.client.create_endpoint_config(
                EndpointConfigName=self.name, Tags=tags,
                ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": self.name, "InitialInstanceCount": 1,
                                     "InstanceType": self.instance_type}])
            self.created.append("config")
            self.client.create_endpoint(EndpointName=self.name, EndpointConfigName=self.name, Tags=tags)
            self.created.append("endpoint")
            log.info("created temporary SageMaker endpoint %s (%s on %s)", self.name, self.hosting.source_arn,
                     self.instance_type)
            self.wait_in_service()
        except BaseException:
            self.delete()
            raise
        return self

    def wait_in_service(self) -> None:
        deadline = self.clock() + self.timeout_s
        while True:
            described = self.client.describe_endpoint(EndpointName=self.name)
            status = described.get("EndpointStatus")
            if status == "InService":
                return
            if status in TERMINAL_FAILURES:
                raise EndpointStartError(f"endpoint {self.name} is {status}: {described.get('FailureReason') or ''}")
            if self.clock() >= deadline:
                raise EndpointStartError(f"endpoint {self.name} was not InService after {self.timeout_s:.0f} s "
                                         f"(status {status})")
            self.sleep(self.poll_s)

    def delete(self) -> None:
        """Delete the endpoint, its config and its model (what was created; each once)."""
        delete_resources(self.client, self.name, self.created)
        self.created = []

    def __enter__(self) -> TemporaryEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.delete()


def delete_resources(client: Any, name: str, kinds: list[str] | tuple[str, ...] = ("model", "config", "endpoint")
                     ) -> None:
    """Delete the endpoint, then the config, then the model named ``name`` (those in ``kinds``); one already gone
    is not an error, and one failure does not stop the others."""
    calls = {"endpoint": ("delete_endpoint", "EndpointName"), "config": ("delete_endpoint_config",
                                                                       "EndpointConfigName"),
             "model": ("delete_model", "ModelName")}
    for kind in ("endpoint", "config", "model"):
        if kind not in kinds:
            continue
        method, key = calls[kind]
        try:
            getattr(client, method)(**{key: name})
        except Exception as exc:
            if "not found" not in str(exc).lower() and "could not find" not in str(exc).lower():
                log.warning("could not delete SageMaker %s %s: %s", kind, name, exc)
    log.info("deleted temporary SageMaker endpoint %s", name)


def remove_abandoned_endpoints(client: Any) -> list[str]:
    """Delete the temporary endpoints (with their configs and models) whose owning process on this host is gone;
    the names removed. Endpoints of live processes, of other hosts, and untagged ones are left alone."""
    removed = []
    for summary in _endpoints(client):
        name = summary["EndpointName"]
        try:
            arn = summary.get("EndpointArn") or client.describe_endpoint(EndpointName=name)["EndpointArn"]
            tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=arn).get("Tags", [])}
        except Exception as exc:
            log.debug("skipping endpoint %s: %s", name, exc)
            continue
        if tags.get(TEMPORARY_TAG) != "true":
            continue
        if owner_gone({HOST_TAG: tags.get(HOST_TAG_KEY, ""), PID_TAG: tags.get(PID_TAG_KEY, "")}):
            log.warning("removing SageMaker endpoint %s left by process %s (gone)", name, tags.get(PID_TAG_KEY))
            delete_resources(client, name)
            removed.append(name)
    return removed


def _endpoints(client: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = client.list_endpoints(NameContains=NAME_PREFIX, MaxResults=100, **({"NextToken": token} if token
                                                                                  else {}))
        found.extend(e for e in page.get("Endpoints", []) if e["EndpointName"].startswith(NAME_PREFIX))
        token = page.get("NextToken")
        if not token:
            return found


def _default_role(client: Any, source_arn: str) -> str:
    """No role given: SageMaker's conventional execution role name in the package's account (else the caller's)."""
    account = source_arn.split(":")[4] if source_arn.count(":") >= 5 else ""
    if re.fullmatch(r"\d{12}", account):
        return f"arn:aws:iam::{account}:role/service-role/AmazonSageMaker-ExecutionRole"
    try:
        import boto3

        account = boto3.session.Session().client("sts", region_name=client.meta.region_name).get_caller_identity()[
            "Account"]
    except Exception:
        account = "000000000000"
    return f"arn:aws:iam::{account}:role/service-role/AmazonSageMaker-ExecutionRole"
