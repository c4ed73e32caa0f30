"""Where a suite's watched checkpoints come from: a local folder, an S3 prefix, a SageMaker model package group or an
MLflow registered model, each an entry of ``CHECKPOINT_SOURCES`` keyed by the ``watch`` field that names it.

A source lists the models it holds now (``Checkpoint``: partition name, version or etag, URI) and maps a partition
name back to the model's location. No Dagster here: the checkpoint sensor (``automation/sensors.py``) hands each
source the client it lists with (boto3 clients built there through dagster-aws where it applies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from eval_pipeline.inference.model_spec import MODEL_NAME_PATTERN
from eval_pipeline.registry import Registry

if TYPE_CHECKING:
    from eval_pipeline.suites.spec import Suite, WatchSpec

CHECKPOINT_MARKER = "config.json"


@dataclass(frozen=True)
class Checkpoint:
    """One model a source holds: its partition name, a version that changes when the model does, and its URI."""

    name: str
    version: str
    uri: str


class CheckpointSource(Protocol):
    kind: str
    """The ``watch`` field naming the source (``dir``, ``s3`` ...)."""
    uri: str
    """The source itself, recorded in run tags (``s3://bucket/prefix/``, ``mlflow:name@alias`` ...)."""
    service: str | None
    """The AWS service whose client ``list`` takes; None: the source builds what it needs."""

    def list(self, client: Any | None = None) -> list[Checkpoint]:
        """The checkpoints the source holds now, by name."""
        ...

    def location(self, name: str, client: Any | None = None) -> str | None:
        """The model's location for a partition name (None: not one of this source's names)."""
        ...


def partition_name(text: str) -> str:
    """A registry's model name made a valid partition key (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "model"


@dataclass(frozen=True)
class LocalFolder:
    """Each directory holding a ``config.json`` in a folder."""

    folder: Path
    kind: str = "dir"
    service: str | None = None

    @property
    def uri(self) -> str:
        return str(self.folder)

    def list(self, client: Any | None = None) -> list[Checkpoint]:
        if not self.folder.is_dir():
            return []
        return sorted((Checkpoint(entry.name, "", str(entry)) for entry in self.folder.iterdir()
                       if entry.is_dir() and (entry / CHECKPOINT_MARKER).is_file()
                       and re.match(MODEL_NAME_PATTERN, entry.name)), key=lambda c: c.name)

    def location(self, name: str, client: Any | None = None) -> str | None:
        folder = self.folder / name
        return str(folder) if folder.is_dir() else None


@dataclass(frozen=True)
class S3Prefix:
    """Each "folder" directly under an S3 prefix holding a ``config.json``; its version is that file's ETag (a
    re-uploaded config is a new model)."""

    bucket: str
    prefix: str
    kind: str = "s3"
    service: str | None = "s3"

    @classmethod
    def parse(cls, uri: str) -> S3Prefix:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def list(self, client: Any | None = None) -> list[Checkpoint]:
        if client is None:
            import boto3
            client = boto3.client("s3")
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name, _, rest = item["Key"][len(self.prefix):].partition("/")
                if rest == CHECKPOINT_MARKER and re.match(MODEL_NAME_PATTERN, name):
                    found.append(Checkpoint(name, item["ETag"].strip('"'), f"{self.uri}{name}/"))
        return sorted(found, key=lambda c: c.name)

    def location(self, name: str, client: Any | None = None) -> str | None:
        return f"{self.uri}{name}/"


@dataclass(frozen=True)
class SageMakerPackageGroup:
    """Each Approved model package of a SageMaker model package group, named ``<group>-v<version>``; its location is
    the first inference container's model data (its image where it has none)."""

    group: str
    region: str | None = None
    kind: str = "sagemaker_model_package_group"
    service: str | None = "sagemaker"

    @property
    def uri(self) -> str:
        return f"sagemaker-model-package-group:{self.group}"

    def _client(self, client: Any | None) -> Any:
        if client is not None:
            return client
        import boto3
        return boto3.client("sagemaker", region_name=self.region)

    def _approved(self, client: Any) -> list[dict[str, Any]]:
        packages = []
        for page in client.get_paginator("list_model_packages").paginate(
                ModelPackageGroupName=self.group, ModelApprovalStatus="Approved"):
            packages.extend(page.get("ModelPackageSummaryList", []))
        return packages

    def list(self, client: Any | None = None) -> list[Checkpoint]:
        return sorted((Checkpoint(f"{partition_name(self.group)}-v{p['ModelPackageVersion']}",
                                  str(p["ModelPackageVersion"]), p["ModelPackageArn"])
                       for p in self._approved(self._client(client))), key=lambda c: int(c.version))

    def location(self, name: str, client: Any | None = None) -> str | None:
        version = _version_suffix(name, partition_name(self.group))
        if version is None:
            return None
        sagemaker = self._client(client)
        for package in self._approved(sagemaker):
            if str(package["ModelPackageVersion"]) == version:
                described = sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])
                containers = described.get("InferenceSpecification", {}).get("Containers", [])
                if not containers:
                    return package["ModelPackageArn"]
                return model_data_uri(containers[0]) or containers[0].get("Image")
        return None


def model_data_uri(container: dict[str, Any]) -> str | None:
    """A SageMaker container's model files as a URI ``model_files`` loads: its ``ModelDataUrl`` (a
    ``model.tar.gz``), else its uncompressed ``ModelDataSource`` (an S3 prefix, ending in ``/``, or one object)."""
    if container.get("ModelDataUrl"):
        return str(container["ModelDataUrl"])
    source = container.get("ModelDataSource", {}).get("S3DataSource", {})
    uri = source.get("S3Uri")
    if not uri:
        return None
    return f"{uri.rstrip('/')}/" if source.get("S3DataType") == "S3Prefix" else str(uri)


@dataclass(frozen=True)
class MlflowRegisteredModel:
    """Each version of an MLflow registered model (``<model>-v<version>``), or, with an alias, the version the alias
    points at: moving the alias to a version not seen yet is a new model. Its location is ``models:/<name>/<v>``."""

    model: str
    alias: str | None = None
    tracking_uri: str | None = None
    kind: str = "mlflow_model"
    service: str | None = None

    @property
    def uri(self) -> str:
        return f"mlflow:{self.model}" + (f"@{self.alias}" if self.alias else "")

    def _client(self, client: Any | None) -> Any:
        if client is not None:
            return client
        from mlflow.tracking import MlflowClient

        from eval_pipeline.tracking.mlflow_log import default_tracking_uri
        uri = self.tracking_uri or default_tracking_uri()
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def _checkpoint(self, version: str) -> Checkpoint:
        return Checkpoint(f"{partition_name(self.model)}-v{version}", str(version), f"models:/{self.model}/{version}")

    def list(self, client: Any | None = None) -> list[Checkpoint]:
        from mlflow.exceptions import MlflowException
        mlflow = self._client(client)
        if self.alias is not None:
            try:
                return [self._checkpoint(mlflow.get_model_version_by_alias(self.model, self.alias).version)]
            except MlflowException:  # no such model or alias (yet)
                return []
        escaped = self.model.replace("'", "\\'")
        versions = mlflow.search_model_versions(f"name='{escaped}'")
        return sorted((self._checkpoint(v.version) for v in versions), key=lambda c: int(c.version))

    def location(self, name: str, client: Any | None = None) -> str | None:
        version = _version_suffix(name, partition_name(self.model))
        return f"models:/{self.model}/{version}" if version is not None else None


def _version_suffix(name: str, stem: str) -> str | None:
    match = re.fullmatch(re.escape(stem) + r"-v(\d+)", name)
    return match.group(1) if match else None


CHECKPOINT_SOURCES: Registry[Any] = Registry("checkpoint source", "eval_pipeline.checkpoint_sources")
"""Builders ``(watch, suite) -> CheckpointSource`` by the ``watch`` field that names the source."""
CHECKPOINT_SOURCES.register("dir", lambda watch, suite: LocalFolder(suite.resolve_path(watch.dir)))
CHECKPOINT_SOURCES.register("s3", lambda watch, suite: S3Prefix.parse(watch.s3))
CHECKPOINT_SOURCES.register("sagemaker_model_package_group",
                            lambda watch, suite: SageMakerPackageGroup(watch.sagemaker_model_package_group,
                                                                       watch.region))
CHECKPOINT_SOURCES.register("mlflow_model", lambda watch, suite: MlflowRegisteredModel(
    watch.mlflow_model, watch.alias, watch.tracking_uri))


def checkpoint_source(watch: WatchSpec, suite: Suite) -> CheckpointSource:
    """The source a suite's ``watch`` names."""
    return CHECKPOINT_SOURCES.get(watch.source_kind)(watch, suite)
