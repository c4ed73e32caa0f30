"""Checkpoint sensors for every source a suite can watch, each against its real client and a local double: S3 and
SageMaker on the moto server (127.0.0.1), an MLflow model registry on a real SQLite tracking store; ticks evaluated
on the state folder's real Dagster instance, the cursor carried from tick to tick as the daemon does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import boto3
import dagster as dg
import pytest
import yaml
from dagster._core.definitions.sensor_definition import SensorExecutionData
from mlflow.tracking import MlflowClient

from eval_pipeline.errors import EvalInputError
from eval_pipeline.instance import local_instance
from eval_pipeline.resources import GenerationCacheResource, MlflowTrackingResource, ParquetIOManager
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import Suite, load_suite
from eval_pipeline.suites.checkpoint_sources import CHECKPOINT_SOURCES
from eval_pipeline.tracking.run_labels import run_labels

PARTITIONS = "demo_models"
SENSOR = "demo_new_checkpoints"


def write_suite(folder: Path, watch: dict[str, object]) -> Suite:
    """A suite of one precomputed model that watches ``watch``, loaded through the real loader."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"suite": "demo", "dataset": {"uri": "data/qa.jsonl"},
            "models": [{"name": "base", "backend": "precomputed"}], "schedule": None, "watch": watch}
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return load_suite(path)


class Daemon:
    """What the sensor daemon keeps between ticks: the cursor (in the instance's sensor state) and the run keys it
    has launched; ``restart`` builds a new sensor object from freshly loaded definitions, the cursor read back."""

    def __init__(self, instance: dg.DagsterInstance, build: Callable[[], dg.Definitions]) -> None:
        self.instance, self.build = instance, build
        self.cursor: str | None = None
        self.launched: list[str] = []
        self.restart()

    def restart(self) -> None:
        self.defs = self.build()
        self.sensor = self.defs.resolve_sensor_def(SENSOR)

    def tick(self) -> SensorExecutionData:
        context = dg.build_sensor_context(instance=self.instance, instance_ref=self.instance.get_ref(),
                                          cursor=self.cursor, definitions=self.defs)
        data = self.sensor.evaluate_tick(context)
        for request in data.dynamic_partitions_requests:
            assert isinstance(request, dg.AddDynamicPartitionsRequest)
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        for request in data.run_requests:
            assert request.run_key not in self.launched, f"{request.run_key} requested twice"
            self.launched.append(request.run_key)
        if data.cursor is not None:
            self.cursor = data.cursor
        return data


def requested(data: SensorExecutionData) -> list[str]:
    return [r.partition_key for r in data.run_requests]


@pytest.fixture
def instance(eval_home: Path) -> dg.DagsterInstance:
    return local_instance()


def resources(tmp_path: Path) -> dict[str, object]:
    return {"io_manager": ParquetIOManager(base_path=str(tmp_path / "outputs")),
            "generation_cache": GenerationCacheResource(path=str(tmp_path / "cache.sqlite")),
            "judge_cache": GenerationCacheResource(path=str(tmp_path / "judge.sqlite")),
            "mlflow": MlflowTrackingResource(tracking_uri=f"sqlite:///{tmp_path / 'runs.db'}")}


def daemon_for(tmp_path: Path, instance: dg.DagsterInstance, watch: dict[str, object]) -> Daemon:
    return Daemon(instance, lambda: build_definitions([write_suite(tmp_path / "evals", watch)], resources(tmp_path)))


# --- the watch key ---------------------------------------------------------------------------------------------


def test_every_source_is_a_registry_entry() -> None:
    assert set(CHECKPOINT_SOURCES.names()) == {"dir", "s3", "sagemaker_model_package_group", "mlflow_model"}


@pytest.mark.parametrize(("watch", "message"), [
    ({"dir": "ckpts", "s3": "s3://bucket/prefix"}, "exactly one source"),
    ({"backend": "local"}, "exactly one source"),
    ({"s3": "bucket/prefix"}, "s3"),
    ({"dir": "ckpts", "alias": "champion"}, "alias applies to mlflow_model only"),
    ({"mlflow_model": "m", "colour": "red"}, "colour"),
    ({"dir": "ckpts", "backend": "nosuch"}, "unknown backend 'nosuch'"),
])
def test_a_watch_names_exactly_one_valid_source(tmp_path: Path, watch: dict[str, object], message: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        write_suite(tmp_path / "evals", watch)
    assert message in str(caught.value) and "demo.yaml" in str(caught.value) and "watch" in str(caught.value)


def test_a_local_folder_watch_keeps_its_shape(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "evals", {"dir": "checkpoints"})
    assert suite.watch is not None and suite.watch.source_kind == "dir" and suite.watch.backend == "local"
    (tmp_path / "checkpoints" / "step-1").mkdir(parents=True)
    assert suite.model("step-1").model == str(tmp_path / "checkpoints" / "step-1")


# --- S3 prefix ---------------------------------------------------------------------------------------------------


def put(s3: object, key: str, body: bytes = b"{}") -> None:
    s3.put_object(Bucket="models", Key=key, Body=body)  # type: ignore[attr-defined]


def test_s3_prefix_requests_each_new_folder_once_across_a_restart(aws_env: str, tmp_path: Path,
                                                                 instance: dg.DagsterInstance) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    put(s3, "team/llm/ckpt-1/config.json")
    put(s3, "team/llm/ckpt-1/model.safetensors", b"weights")
    put(s3, "team/llm/ckpt-2/model.safetensors", b"still uploading")  # no config.json yet
    put(s3, "team/llm/ckpt-1/sub/config.json")  # not a folder directly under the prefix
    put(s3, "team/other/ckpt-9/config.json")  # another prefix
    daemon = daemon_for(tmp_path, instance, {"s3": "s3://models/team/llm", "backend": "local"})

    first = daemon.tick()
    assert requested(first) == ["ckpt-1"]
    etag = s3.head_object(Bucket="models", Key="team/llm/ckpt-1/config.json")["ETag"].strip('"')
    request = first.run_requests[0]
    assert request.run_key == f"checkpoint:s3://models/team/llm/:ckpt-1:{etag}"
    assert request.tags["eval/checkpoint_source"] == "s3://models/team/llm/"
    assert request.tags["eval/checkpoint_kind"] == "s3"
    assert request.tags["eval/checkpoint_uri"] == "s3://models/team/llm/ckpt-1/"
    assert request.tags["eval/checkpoint_version"] == etag
    assert json.loads(first.cursor or "") == {"ckpt-1": etag}
    assert instance.get_dynamic_partitions(PARTITIONS) == ["ckpt-1"]
    assert daemon.tick().skip_message == "no new checkpoint in s3://models/team/llm/"

    put(s3, "team/llm/ckpt-2/config.json")
    daemon.restart()  # a new process: definitions loaded again, the cursor read back
    assert requested(daemon.tick()) == ["ckpt-2"]
    assert daemon.tick().run_requests == []
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["ckpt-1", "ckpt-2"]

    # ckpt-1 uploaded again (another config): a new version of the same partition, evaluated again.
    put(s3, "team/llm/ckpt-1/config.json", b'{"step": 2}')
    again = daemon.tick()
    assert requested(again) == ["ckpt-1"] and not again.dynamic_partitions_requests
    assert daemon.launched[-1] != daemon.launched[0]

    suite = load_suite(tmp_path / "evals" / "demo.yaml")
    spec = suite.model("ckpt-2")  # the partition resolves to the folder's S3 URI
    assert (spec.backend, spec.model) == ("local", "s3://models/team/llm/ckpt-2/")


def test_a_lost_cursor_requests_only_run_keys_already_used(aws_env: str, tmp_path: Path,
                                                           instance: dg.DagsterInstance) -> None:
    """Without its cursor the sensor asks again, under the same run keys: the daemon drops those requests."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    put(s3, "llm/a/config.json")
    daemon = daemon_for(tmp_path, instance, {"s3": "s3://models/llm/"})
    keys = [r.run_key for r in daemon.tick().run_requests]
    daemon.cursor = None
    daemon.launched = []
    assert [r.run_key for r in daemon.tick().run_requests] == keys


# --- SageMaker model package group -------------------------------------------------------------------------------


def create_package(sagemaker: object, status: str, data: str) -> str:
    made = sagemaker.create_model_package(  # type: ignore[attr-defined]
        ModelPackageGroupName="chat-models", ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": "123.dkr.ecr.us-east-1.amazonaws.com/vllm:1",
                                                "ModelDataUrl": data}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})
    return made["ModelPackageArn"]


def test_sagemaker_group_requests_each_newly_approved_package_once(aws_env: str, tmp_path: Path,
                                                                   instance: dg.DagsterInstance,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", aws_env)
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model_package_group(ModelPackageGroupName="chat-models")
    first_arn = create_package(sagemaker, "Approved", "s3://models/chat/v1/model.tar.gz")
    pending_arn = create_package(sagemaker, "PendingManualApproval", "s3://models/chat/v2/model.tar.gz")
    create_package(sagemaker, "Rejected", "s3://models/chat/v3/model.tar.gz")
    daemon = daemon_for(tmp_path, instance, {"sagemaker_model_package_group": "chat-models",
                                             "region": "us-east-1"})

    first = daemon.tick()
    assert requested(first) == ["chat-models-v1"]
    tags = first.run_requests[0].tags
    assert tags["eval/checkpoint_uri"] == first_arn
    assert tags["eval/checkpoint_source"] == "sagemaker-model-package-group:chat-models"
    assert first.run_requests[0].run_key == "checkpoint:sagemaker-model-package-group:chat-models:chat-models-v1:1"
    assert daemon.tick().run_requests == []

    sagemaker.update_model_package(ModelPackageArn=pending_arn, ModelApprovalStatus="Approved")
    daemon.restart()
    assert requested(daemon.tick()) == ["chat-models-v2"]
    assert daemon.tick().run_requests == []
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["chat-models-v1", "chat-models-v2"]

    suite = load_suite(tmp_path / "evals" / "demo.yaml")
    assert suite.model("chat-models-v2").model == "s3://models/chat/v2/model.tar.gz"  # the package's model data
    assert suite.watched_model("chat-models-v3") is None  # rejected: not a watched model


# --- MLflow registered model -------------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> tuple[str, MlflowClient]:
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("chat model")
    return uri, client


def test_mlflow_model_requests_each_new_version_once(tmp_path: Path, instance: dg.DagsterInstance,
                                                     registry: tuple[str, MlflowClient]) -> None:
    uri, client = registry
    for step in (1, 2):
        client.create_model_version("chat model", source=f"s3://models/chat/{step}")
    daemon = daemon_for(tmp_path, instance, {"mlflow_model": "chat model", "tracking_uri": uri})
    first = daemon.tick()
    assert requested(first) == ["chat-model-v1", "chat-model-v2"]
    assert [r.tags["eval/checkpoint_uri"] for r in first.run_requests] == ["models:/chat model/1",
                                                                           "models:/chat model/2"]
    assert daemon.tick().run_requests == []
    client.create_model_version("chat model", source="s3://models/chat/3")
    daemon.restart()
    assert requested(daemon.tick()) == ["chat-model-v3"]
    assert daemon.tick().run_requests == []
    assert load_suite(tmp_path / "evals" / "demo.yaml").model("chat-model-v3").model == "models:/chat model/3"


def test_mlflow_alias_moved_to_a_new_version_is_a_new_model(tmp_path: Path, instance: dg.DagsterInstance,
                                                            registry: tuple[str, MlflowClient]) -> None:
    uri, client = registry
    for step in (1, 2, 3):
        client.create_model_version("chat model", source=f"s3://models/chat/{step}")
    daemon = daemon_for(tmp_path, instance, {"mlflow_model": "chat model", "alias": "champion",
                                             "tracking_uri": uri})
    assert daemon.tick().skip_message == "no new checkpoint in mlflow:chat model@champion"  # no alias yet

    client.set_registered_model_alias("chat model", "champion", "1")
    first = daemon.tick()
    assert requested(first) == ["chat-model-v1"]
    assert first.run_requests[0].tags["eval/checkpoint_source"] == "mlflow:chat model@champion"
    assert daemon.tick().run_requests == []

    client.set_registered_model_alias("chat model", "champion", "3")
    daemon.restart()
    assert requested(daemon.tick()) == ["chat-model-v3"]
    client.set_registered_model_alias("chat model", "champion", "1")  # moved back: v1 was evaluated already
    assert daemon.tick().run_requests == []
    assert daemon.launched == ["checkpoint:mlflow:chat model@champion:chat-model-v1:1",
                               "checkpoint:mlflow:chat model@champion:chat-model-v3:3"]


def test_the_mlflow_run_records_the_checkpoint_source(tmp_path: Path, instance: dg.DagsterInstance,
                                                      registry: tuple[str, MlflowClient]) -> None:
    """The metrics asset logs ``run_labels(run.tags).tags`` as the MLflow run's tags: they name the source."""
    uri, client = registry
    client.create_model_version("chat model", source="s3://models/chat/1")
    daemon = daemon_for(tmp_path, instance, {"mlflow_model": "chat model", "tracking_uri": uri})
    tags = daemon.tick().run_requests[0].tags
    assert run_labels(tags).tags == {"eval/checkpoint_source": "mlflow:chat model",
                                     "eval/checkpoint_kind": "mlflow_model",
                                     "eval/checkpoint_uri": "models:/chat model/1", "eval/checkpoint_version": "1"}
