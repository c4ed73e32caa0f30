"""Sensors, the nightly schedule and the definitions, evaluated on a real (temporary) Dagster instance, no daemon."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.sensor_definition import SensorExecutionData

from eval_pipeline.assets import STAGES, build_suite_assets
from eval_pipeline.assets.generations import inference_pool
from eval_pipeline.automation import declared_models_sensor, new_checkpoint_sensor, suite_eval_job
from eval_pipeline.resources import GenerationCacheResource, MlflowTrackingResource, ParquetIOManager
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import Suite, load_suite, load_suites

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = ("base", "tuned")
PARTITIONS = "demo_models"


def write_suite(folder: Path, name: str = "demo", *, watch: str | None = None,
                schedule: str | None = "0 2 * * *") -> Suite:
    """A suite file of two precomputed models in ``folder``, loaded through the real loader."""
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict[str, object] = {
        "suite": name,
        "dataset": {"uri": "data/qa.jsonl"},
        "models": [{"name": model, "backend": "precomputed"} for model in MODELS],
        "schedule": schedule,
    }
    if watch is not None:
        spec["watch"] = {"dir": watch}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return load_suite(path)


def make_checkpoint(folder: Path, name: str, *, config: bool = True) -> Path:
    """A model folder as a trainer writes it; without ``config.json`` it is not a checkpoint (yet)."""
    checkpoint = folder / name
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"")
    if config:
        (checkpoint / "config.json").write_text("{}", encoding="utf-8")
    return checkpoint


def temporary_resources(folder: Path) -> dict[str, object]:
    """Resources under a temporary folder (MLflow off: nothing here materializes)."""
    return {
        "io_manager": ParquetIOManager(base_path=str(folder / "outputs")),
        "generation_cache": GenerationCacheResource(path=str(folder / "generations.sqlite")),
        "judge_cache": GenerationCacheResource(path=str(folder / "judgments.sqlite")),
        "mlflow": MlflowTrackingResource(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", enabled=False),
    }


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance,
         defs: dg.Definitions | None = None) -> SensorExecutionData:
    """One sensor evaluation, as the daemon would run it (partitioned run requests need the definitions)."""
    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs)
    return sensor.evaluate_tick(context)


def apply_partition_requests(instance: dg.DagsterInstance, data: SensorExecutionData) -> None:
    """What the daemon does with a tick's dynamic partition requests."""
    for request in data.dynamic_partitions_requests:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


@pytest.fixture(scope="module")
def module_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A real SQLite-backed instance in a temporary folder (sensors resolve partitions through its ref)."""
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster_home"))) as test_instance:
        yield test_instance


@pytest.fixture
def instance(module_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The module's instance with no partitions of the test suite (creating one costs ~1 s)."""
    for key in module_instance.get_dynamic_partitions(PARTITIONS):
        module_instance.delete_dynamic_partition(PARTITIONS, key)
    return module_instance


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


@pytest.fixture
def watched_suite(tmp_path: Path, checkpoints: Path) -> Suite:
    return write_suite(tmp_path / "suites", watch=str(checkpoints))


def checkpoint_sensor(suite: Suite) -> dg.SensorDefinition:
    return new_checkpoint_sensor(suite, suite_eval_job(suite))


def suite_defs(suite: Suite, tmp_path: Path) -> dg.Definitions:
    return build_definitions([suite], temporary_resources(tmp_path))


# --- the checkpoint sensor -------------------------------------------------------------------------------------


def test_checkpoint_sensor_skips_when_the_folder_is_missing(watched_suite: Suite, checkpoints: Path,
                                                            instance: dg.DagsterInstance) -> None:
    assert not checkpoints.exists()
    data = tick(checkpoint_sensor(watched_suite), instance)
    assert data.run_requests == [] and not data.dynamic_partitions_requests
    assert data.skip_message == f"no new checkpoint in {checkpoints}"


def test_checkpoint_sensor_ignores_what_is_not_a_checkpoint(watched_suite: Suite, checkpoints: Path,
                                                            instance: dg.DagsterInstance) -> None:
    make_checkpoint(checkpoints, "no-config", config=False)  # still being written, or not a model
    make_checkpoint(checkpoints, "bad name")  # not a valid partition key
    make_checkpoint(checkpoints, ".hidden")
    (checkpoints / "notes.txt").write_text("a file, not a folder", encoding="utf-8")
    data = tick(checkpoint_sensor(watched_suite), instance)
    assert data.run_requests == [] and not data.dynamic_partitions_requests
    assert data.skip_message is not None and "no new checkpoint" in data.skip_message


def test_checkpoint_sensor_registers_and_requests_new_checkpoints(watched_suite: Suite, checkpoints: Path,
                                                                  instance: dg.DagsterInstance,
                                                                  tmp_path: Path) -> None:
    defs = suite_defs(watched_suite, tmp_path)
    sensor = defs.resolve_sensor_def("demo_new_checkpoints")
    assert sensor.job_name == "demo_eval"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    make_checkpoint(checkpoints, "ckpt-2")
    make_checkpoint(checkpoints, "ckpt-1")
    make_checkpoint(checkpoints, "ckpt-3", config=False)

    data = tick(sensor, instance, defs)
    assert data.skip_message is None
    assert data.dynamic_partitions_requests == [
        dg.AddDynamicPartitionsRequest(partitions_def_name="demo_models", partition_keys=["ckpt-1", "ckpt-2"])]
    assert [r.partition_key for r in data.run_requests] == ["ckpt-1", "ckpt-2"]
    assert [r.run_key for r in data.run_requests] == ["checkpoint:ckpt-1", "checkpoint:ckpt-2"]
    assert all(r.tags["eval/trigger"] == "new_checkpoint" for r in data.run_requests)

    # Once the daemon has added the partitions, the same folders are not new any more.
    apply_partition_requests(instance, data)
    assert sorted(instance.get_dynamic_partitions("demo_models")) == ["ckpt-1", "ckpt-2"]
    again = tick(sensor, instance, defs)
    assert again.run_requests == [] and again.skip_message is not None

    # A checkpoint that finishes writing later (config.json appears) is picked up alone.
    (checkpoints / "ckpt-3" / "config.json").write_text("{}", encoding="utf-8")
    later = tick(sensor, instance, defs)
    assert [r.partition_key for r in later.run_requests] == ["ckpt-3"]
    assert later.dynamic_partitions_requests == [
        dg.AddDynamicPartitionsRequest(partitions_def_name="demo_models", partition_keys=["ckpt-3"])]


def test_checkpoint_partition_resolves_to_a_local_model(watched_suite: Suite, checkpoints: Path) -> None:
    folder = make_checkpoint(checkpoints, "ckpt-1")
    model = watched_suite.model("ckpt-1")
    assert (model.name, model.backend, model.model) == ("ckpt-1", "local", str(folder))


def test_checkpoint_sensor_watches_relative_folders_from_the_project_root(tmp_path: Path,
                                                                         instance: dg.DagsterInstance) -> None:
    suite = write_suite(tmp_path / "evals", watch="checkpoints")  # evals/ → project root is its parent
    make_checkpoint(tmp_path / "checkpoints", "step-100")
    data = tick(checkpoint_sensor(suite), instance, suite_defs(suite, tmp_path))
    assert [r.partition_key for r in data.run_requests] == ["step-100"]


# --- the declared-models sensor --------------------------------------------------------------------------------


def test_declared_models_sensor_adds_missing_models_only(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    suite = write_suite(tmp_path / "suites")
    sensor = declared_models_sensor(suite)
    assert sensor.name == "demo_declared_models" and sensor.default_status == dg.DefaultSensorStatus.RUNNING

    instance.add_dynamic_partitions("demo_models", ["tuned"])
    data = tick(sensor, instance)
    assert data.run_requests == []  # registering is not evaluating
    assert data.dynamic_partitions_requests == [
        dg.AddDynamicPartitionsRequest(partitions_def_name="demo_models", partition_keys=["base"])]

    apply_partition_requests(instance, data)
    done = tick(sensor, instance)
    assert done.skip_message == "every declared model is a partition" and not done.dynamic_partitions_requests


# --- the nightly schedule --------------------------------------------------------------------------------------


def test_nightly_schedule_requests_one_run_per_partition(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    suite = write_suite(tmp_path / "suites", schedule="30 3 * * *")
    defs = suite_defs(suite, tmp_path)
    schedule = defs.resolve_schedule_def("demo_nightly")
    repository = defs.get_repository_def()
    assert schedule.name == "demo_nightly" and schedule.cron_schedule == "30 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    when = dt.datetime(2026, 1, 2, 3, 30, tzinfo=dt.UTC)

    def evaluate() -> list[dg.RunRequest]:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                            repository_def=repository)
        return list(schedule.evaluate_tick(context).run_requests or [])

    assert evaluate() == []

    instance.add_dynamic_partitions(PARTITIONS, ["tuned", "base", "ckpt-7"])
    requests = evaluate()
    assert [r.partition_key for r in requests] == ["base", "ckpt-7", "tuned"]
    assert [r.run_key for r in requests] == ["2026-01-02:base", "2026-01-02:ckpt-7", "2026-01-02:tuned"]
    assert all(r.tags["eval/trigger"] == "nightly" for r in requests)
    assert all(r.tags["dagster/partition"] == r.partition_key for r in requests)


# --- the definitions -------------------------------------------------------------------------------------------


def test_build_definitions_has_every_job_sensor_schedule_and_asset(tmp_path: Path) -> None:
    folder = tmp_path / "suites"
    write_suite(folder, "demo", watch=str(tmp_path / "checkpoints"))
    write_suite(folder, "plain", schedule=None)
    suites = load_suites(folder)
    defs = build_definitions(suites, temporary_resources(tmp_path))
    dg.Definitions.validate_loadable(defs)

    for suite in ("demo", "plain"):
        job = defs.resolve_job_def(f"{suite}_eval")
        assert isinstance(job.partitions_def, dg.DynamicPartitionsDefinition)
        assert job.partitions_def.name == f"{suite}_models"
    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} == {
        "demo_declared_models", "demo_new_checkpoints", "plain_declared_models",
        *(f"{suite}_{kind}" for suite in ("demo", "plain") for kind in ("staleness", "dataset_version"))}
    assert {s.name for s in repository.sensor_defs if s.default_status == dg.DefaultSensorStatus.STOPPED} == {
        f"{suite}_{kind}" for suite in ("demo", "plain") for kind in ("staleness", "dataset_version")}  # opt-in
    assert {s.name for s in repository.schedule_defs} == {"demo_nightly"}
    assert set(defs.resolve_all_asset_keys()) == {
        dg.AssetKey([suite, stage]) for suite in ("demo", "plain") for stage in STAGES}
    metrics = defs.resolve_assets_def(dg.AssetKey(["demo", "metrics"]))
    assert dg.AssetCheckKey(dg.AssetKey(["demo", "metrics"]), "error_rate") in metrics.check_keys
    samples = defs.resolve_assets_def(dg.AssetKey(["demo", "samples"]))
    assert samples.partitions_def is None  # the dataset stage is not per model


def test_the_repository_suites_load_as_definitions(tmp_path: Path) -> None:
    suites = load_suites(REPO_ROOT / "evals")
    assert "quickstart" in {s.suite for s in suites}
    defs = build_definitions(suites, temporary_resources(tmp_path))
    dg.Definitions.validate_loadable(defs)
    for suite in suites:
        assert defs.resolve_job_def(f"{suite.suite}_eval") is not None
        if suite.baseline is not None:
            compare = defs.resolve_job_def(f"{suite.suite}_compare")
            assert compare.partitions_def is None  # it reads every model partition
        assert defs.resolve_sensor_def(f"{suite.suite}_declared_models") is not None
        if suite.watch is not None:
            assert defs.resolve_sensor_def(f"{suite.suite}_new_checkpoints").job_name == f"{suite.suite}_eval"
        if suite.schedule:
            assert defs.resolve_schedule_def(f"{suite.suite}_nightly").job_name == f"{suite.suite}_eval"


def test_inference_steps_share_a_pool_per_backend(tmp_path: Path) -> None:
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "one.yaml").write_text("suite: one\ndataset: {uri: x.jsonl}\nmodels:\n"
                                    "  - {name: a, backend: bedrock, model: m1}\n"
                                    "  - {name: b, backend: bedrock, model: m2}\n")
    (evals / "two.yaml").write_text("suite: two\ndataset: {uri: x.jsonl}\nmodels:\n"
                                    "  - {name: a, backend: bedrock, model: m1}\n  - {name: b, backend: precomputed}\n")
    assert inference_pool(load_suite(evals / "one.yaml")) == "inference-bedrock"
    assert inference_pool(load_suite(evals / "two.yaml")) == "inference-mixed"
    generations = next(a for a in build_suite_assets(load_suite(evals / "one.yaml"))
                       if a.key.path[-1] == "generations")
    assert generations.op.pool == "inference-bedrock"
