"""The dataset-version sensor: a new version of the dataset re-runs every evaluated model partition once, and the
request cache answers the old rows, so only the new rows reach the (fake) model server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest

from eval_pipeline.automation.dataset_sensor import dataset_sensor_name
from eval_pipeline.automation.jobs import eval_job_name
from eval_pipeline.data.dataset_versions import DatasetVersion, dataset_version
from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import load_suite
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter

N, NEW = 6, 3
BASE, TUNED = "amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0"


def answer(prompt: str) -> str:
    return str(2 * int(prompt.split()[2]))


@pytest.fixture
def router() -> ModelRouter:
    return ModelRouter({BASE: answer, TUNED: lambda prompt: "I do not know."})


@pytest.fixture
def fake(aws_env: str, monkeypatch: pytest.MonkeyPatch, router: ModelRouter) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer=router, known_models=set(router.responders)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server


def rows(start: int, stop: int) -> str:
    return "".join(json.dumps({"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n"
                   for i in range(start, stop))


def write_project(folder: Path) -> Path:
    (folder / "evals").mkdir(parents=True)
    (folder / "qa.jsonl").write_text(rows(0, N))
    path = folder / "evals" / "growing.yaml"
    path.write_text(f"""suite: growing
dataset: {{uri: qa.jsonl}}
models:
  - {{name: base, backend: bedrock, model: {BASE}}}
  - {{name: tuned, backend: bedrock, model: {TUNED}}}
generation: {{max_tokens: 16}}
scorers: [exact_match]
max_error_rate: 0.0
schedule: null
""")
    return path


def tick(instance: dg.DagsterInstance, defs: dg.Definitions, cursor: str | None) -> dg.SensorResult:
    repository = defs.get_repository_def()
    sensor = repository.get_sensor_def(dataset_sensor_name("growing"))
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                  repository_def=repository, cursor=cursor))


def metric(instance: dg.DagsterInstance, model: str) -> tuple[float, int]:
    """The exact_match mean and n of the model's latest metrics materialization."""
    event = instance.get_latest_materialization_event(dg.AssetKey(["growing", "metrics"]))
    assert event is not None
    records = instance.fetch_materializations(dg.AssetKey(["growing", "metrics"]), limit=10).records
    path = next(r.asset_materialization.metadata["path"].value for r in records  # type: ignore[union-attr]
                if r.partition_key == model)
    table = pd.read_parquet(path)
    row = table[(table["metric"] == "exact_match") & table["breakdown_key"].isna()].iloc[0]
    return float(row["value"]), int(row["n"])


@pytest.mark.slow
def test_a_new_dataset_version_runs_each_evaluated_model_once_sending_only_the_new_rows(
        eval_home: Path, fake: FakeLLMServer, router: ModelRouter, tmp_path: Path) -> None:
    path = write_project(tmp_path / "project")
    instance = local_instance()
    assert run_suite(load_suite(path), instance).success
    assert dict(router.calls) == {BASE: N, TUNED: N}
    defs = build_definitions([load_suite(path)])

    first = tick(instance, defs, None)  # the first look records the version
    assert first.run_requests == [] and first.cursor is not None
    unchanged = tick(instance, defs, first.cursor)
    assert unchanged.run_requests in (None, [])

    os.utime(tmp_path / "project" / "qa.jsonl", ns=(1, 1))  # touched, not changed: no new version
    touched = tick(instance, defs, first.cursor)
    assert not touched.run_requests and touched.cursor != first.cursor
    assert DatasetVersion.from_json(touched.cursor).version == DatasetVersion.from_json(first.cursor).version

    with (tmp_path / "project" / "qa.jsonl").open("a") as handle:
        handle.write(rows(N, N + NEW))
    changed = tick(instance, defs, touched.cursor)
    version = DatasetVersion.from_json(changed.cursor).version
    assert version != DatasetVersion.from_json(first.cursor).version
    assert sorted((r.partition_key, r.run_key) for r in changed.run_requests) == [
        ("base", f"dataset:{version}:base"), ("tuned", f"dataset:{version}:tuned")]
    assert tick(instance, defs, touched.cursor).run_requests == changed.run_requests  # a lost cursor: same keys
    assert not tick(instance, defs, changed.cursor).run_requests

    router.calls.clear()
    job = defs.get_job_def(eval_job_name("growing"))
    for request in changed.run_requests:
        assert job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                      tags=request.tags).success
    assert dict(router.calls) == {BASE: NEW, TUNED: NEW}  # the old rows came from the request cache
    assert metric(instance, "base") == (1.0, N + NEW)  # every row, old and new, is in the metrics
    assert metric(instance, "tuned") == (0.0, N + NEW)


def test_a_folder_version_is_its_files_contents_wherever_it_lies(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part1.jsonl").write_text(rows(0, 2))
        (tmp_path / name / "part2.jsonl").write_text(rows(2, 4))
        (tmp_path / name / "notes.txt").write_text(name)  # not a dataset file
    first = dataset_version(str(tmp_path / "a"))
    assert first.version == dataset_version(str(tmp_path / "b")).version
    assert dataset_version(str(tmp_path / "a" / "*.jsonl")).version == dataset_version(
        str(tmp_path / "b" / "*.jsonl")).version
    (tmp_path / "a" / "part3.jsonl").write_text(rows(4, 5))
    assert dataset_version(str(tmp_path / "a"), first).version != first.version


def test_an_s3_version_follows_the_objects_etags(aws_env: str) -> None:
    client = boto3.client("s3")
    client.create_bucket(Bucket="datasets")
    client.put_object(Bucket="datasets", Key="qa/part1.jsonl", Body=rows(0, 2).encode())
    first = dataset_version("s3://datasets/qa/", s3_client=client)
    assert dataset_version("s3://datasets/qa/", s3_client=client) == first
    client.put_object(Bucket="datasets", Key="qa/part2.jsonl", Body=rows(2, 3).encode())
    second = dataset_version("s3://datasets/qa/", s3_client=client)
    assert second.version != first.version and set(second.stamps) == {"qa/part1.jsonl", "qa/part2.jsonl"}
    assert dataset_version("s3://datasets/qa/part1.jsonl", s3_client=client).stamps == {
        "qa/part1.jsonl": first.stamps["qa/part1.jsonl"]}
