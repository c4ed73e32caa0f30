"""Suites split into shards: the stable shard hash, the model × shard partitions, a sharded suite through the real
assets (the same numbers as one shard), empty shards, the CLI, the sensors' and the schedule's run requests, and
the declarative aggregation of a model once all its shards are materialized."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from eval_pipeline.assets.partitions import (
    model_partitions,
    partition_model,
    partition_shard,
    shard_keys,
    stage_partitions,
    tables_by_model,
)
from eval_pipeline.automation import new_checkpoint_sensor, suite_eval_job
from eval_pipeline.cli import main
from eval_pipeline.data.shards import concat_shards, in_sample_order, shard_of, shard_rows
from eval_pipeline.errors import EvalInputError
from eval_pipeline.execution import SuiteRun, run_suite, summed_counts
from eval_pipeline.instance import local_instance
from eval_pipeline.resources import ParquetIOManager
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import load_suite
from tests.test_automation import apply_partition_requests, make_checkpoint, temporary_resources, tick

REPO = Path(__file__).resolve().parent.parent
QA = REPO / "examples" / "data" / "gen_qa.jsonl"


def reference_shard(sample_id: str, shards: int) -> int:
    """An independent statement of the shard hash: the first 16 hex digits of SHA-256, as an integer, mod n."""
    return int(hashlib.sha256(sample_id.encode()).hexdigest()[:16], 16) % shards


# --- shard_of, shard_rows ----------------------------------------------------------------------------------------


def test_shard_of_is_sha256_based_and_pinned() -> None:
    ids = [f"item-{i}" for i in range(500)] + ["qa-001", "ünïcode-✓", ""]
    for shards in (1, 2, 3, 7, 1024):
        assert [shard_of(i, shards) for i in ids] == [reference_shard(i, shards) for i in ids]
    # pinned: a change of the hash would move every stored shard
    assert [shard_of(f"qa-{i:03d}", 4) for i in range(1, 9)] == [reference_shard(f"qa-{i:03d}", 4) for i in range(1, 9)]
    assert shard_of("qa-001", 3) == int.from_bytes(hashlib.sha256(b"qa-001").digest()[:8], "big") % 3
    with pytest.raises(ValueError):
        shard_of("x", 0)


def test_shard_of_does_not_depend_on_the_hash_seed() -> None:
    ids = [f"s{i}" for i in range(50)]
    code = ("import json, sys; from eval_pipeline.data.shards import shard_of; "
            f"print(json.dumps([shard_of(i, 5) for i in {ids!r}]))")
    outputs = set()
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                              cwd=REPO)
        outputs.add(done.stdout.strip())
    assert outputs == {json.dumps([reference_shard(i, 5) for i in ids])}


def test_shards_are_balanced() -> None:
    n, shards = 20_000, 4
    counts = pd.Series([shard_of(f"row-{i}", shards) for i in range(n)]).value_counts()
    expected = n / shards
    sigma = (n * (1 / shards) * (1 - 1 / shards)) ** 0.5  # binomial
    assert set(counts.index) == set(range(shards))
    assert all(abs(c - expected) < 5 * sigma for c in counts), counts.to_dict()


def test_shard_rows_partitions_the_items_and_appending_moves_no_old_row() -> None:
    samples = pd.DataFrame({"sample_id": [f"id-{i}" for i in range(60)], "x": range(60)})
    parts = [shard_rows(samples, s, 3) for s in range(3)]
    assert sum(len(p) for p in parts) == 60
    assert sorted(pd.concat(parts)["sample_id"]) == sorted(samples["sample_id"])
    for shard, part in enumerate(parts):
        assert part["x"].is_monotonic_increasing  # the dataset's order within a shard
        assert all(reference_shard(i, 3) == shard for i in part["sample_id"])
    grown = pd.concat([samples, pd.DataFrame({"sample_id": [f"new-{i}" for i in range(40)], "x": range(60, 100)})],
                      ignore_index=True)
    for shard in range(3):
        old = shard_rows(grown, shard, 3)
        assert old[old["sample_id"].str.startswith("id-")]["sample_id"].tolist() == parts[shard]["sample_id"].tolist()
    assert shard_rows(samples, 0, 1) is samples
    with pytest.raises(ValueError):
        shard_rows(samples, 3, 3)


def test_concat_shards_restores_the_unsharded_order() -> None:
    samples = pd.DataFrame({"sample_id": [f"q{i}" for i in range(20)]})
    whole = pd.DataFrame({"sample_id": [f"q{i}" for i in range(20) for _ in range(2)],
                          "sample_index": [j for _ in range(20) for j in range(2)], "v": range(40)})
    shards = [whole[[reference_shard(i, 3) == s for i in whole["sample_id"]]] for s in range(3)]
    pd.testing.assert_frame_equal(concat_shards(shards, samples), whole)
    pd.testing.assert_frame_equal(in_sample_order(whole.iloc[::-1], samples)["sample_id"].to_frame(),
                                  whole["sample_id"].to_frame())
    empty = whole.iloc[0:0]
    assert concat_shards([empty, empty], samples).columns.tolist() == whole.columns.tolist()
    pd.testing.assert_frame_equal(concat_shards([empty, *shards], samples), whole)


# --- partitions -------------------------------------------------------------------------------------------------


def write_suite(folder: Path, name: str = "sharded", *, shards: int = 1, rows: int | None = None,
                baseline: bool = True, **extra: object) -> Path:
    """A suite of two precomputed models over the example QA items (the oracle wrong on every 4th item, the other
    on every 3rd)."""
    items = [json.loads(line) for line in QA.read_text().splitlines()][:rows]
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    for model, every in (("oracle", 4), ("guess", 3)):
        (data / f"{model}.jsonl").write_text("".join(
            json.dumps({"sample_id": r["id"], "response": r["referenceResponse"] if i % every else "no idea"}) + "\n"
            for i, r in enumerate(items)))
    spec: dict[str, object] = {
        "suite": name, "dataset": {"uri": "data/qa.jsonl"}, "schedule": None,
        "models": [{"name": m, "backend": "precomputed", "responses": f"data/{m}.jsonl"} for m in ("oracle", "guess")],
        "scorers": ["exact_match", "f1"], "breakdown_keys": ["category"], "shards": shards, **extra}
    if baseline:
        spec["baseline"] = "oracle"
    path = folder / "evals" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_partition_helpers(tmp_path: Path) -> None:
    one = load_suite(write_suite(tmp_path / "a", shards=1))
    three = load_suite(write_suite(tmp_path / "b", shards=3))
    assert stage_partitions(one) == model_partitions(one)
    multi = stage_partitions(three)
    assert isinstance(multi, dg.MultiPartitionsDefinition)
    assert [d.name for d in multi.partitions_defs] == ["model", "shard"]
    assert multi.get_partitions_def_for_dimension("shard").get_partition_keys() == ["0", "1", "2"]
    assert multi.get_partitions_def_for_dimension("model") == model_partitions(three)

    assert shard_keys(one, "oracle") == ["oracle"]
    keys = shard_keys(three, "oracle")
    assert [str(k) for k in keys] == ["oracle|0", "oracle|1", "oracle|2"]
    assert [partition_model(k) for k in keys] == ["oracle"] * 3 and [partition_shard(k) for k in keys] == [0, 1, 2]
    assert (partition_model("ckpt-1.5|2"), partition_shard("ckpt-1.5|2")) == ("ckpt-1.5", 2)  # a plain string key
    assert (partition_model("oracle"), partition_shard("oracle")) == ("oracle", None)


def test_shards_are_validated_at_load(tmp_path: Path) -> None:
    for bad in (0, 1025, "two"):
        path = write_suite(tmp_path / f"bad{bad}", shards=bad)  # type: ignore[arg-type]
        with pytest.raises(EvalInputError) as error:
            load_suite(path)
        assert error.value.field == "shards" and error.value.line is not None
    assert load_suite(write_suite(tmp_path / "max", shards=1024)).shards == 1024
    assert load_suite(write_suite(tmp_path / "default")).shards == 1


def test_a_traces_suite_refuses_shards(tmp_path: Path) -> None:
    from tests.test_traces_suite import write_suite as write_traces_suite

    assert load_suite(write_traces_suite(tmp_path / "one")).shards == 1
    with pytest.raises(EvalInputError) as error:
        load_suite(write_traces_suite(tmp_path / "two", shards=2))
    assert error.value.field == "shards" and "traces" in str(error.value)


def test_definitions_of_a_sharded_suite(tmp_path: Path) -> None:
    plain = load_suite(write_suite(tmp_path / "p", "plain", shards=1))
    sharded = load_suite(write_suite(tmp_path / "s", "sharded", shards=3))
    defs = build_definitions([plain, sharded], temporary_resources(tmp_path))
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    jobs = {job.name for job in repository.get_all_jobs()}
    assert {"plain_eval", "plain_compare", "sharded_eval", "sharded_aggregate", "sharded_compare"} <= jobs
    assert "plain_aggregate" not in jobs
    assert isinstance(defs.resolve_job_def("plain_eval").partitions_def, dg.DynamicPartitionsDefinition)
    assert isinstance(defs.resolve_job_def("sharded_eval").partitions_def, dg.MultiPartitionsDefinition)
    assert defs.resolve_job_def("sharded_aggregate").partitions_def == model_partitions(sharded)
    eval_assets = {key.path[-1] for key in defs.resolve_job_def("sharded_eval").asset_layer.executable_asset_keys}
    assert eval_assets == {"samples", "generations", "scores"}
    aggregate = {key.path[-1] for key in defs.resolve_job_def("sharded_aggregate").asset_layer.executable_asset_keys}
    assert aggregate == {"metrics"}
    for stage in ("generations", "scores"):
        assert isinstance(defs.resolve_assets_def(dg.AssetKey(["sharded", stage])).partitions_def,
                          dg.MultiPartitionsDefinition)
    metrics = defs.resolve_assets_def(dg.AssetKey(["sharded", "metrics"]))
    assert metrics.partitions_def == model_partitions(sharded)
    assert next(iter(metrics.specs)).automation_condition is not None
    assert next(iter(defs.resolve_assets_def(dg.AssetKey(["plain", "metrics"])).specs)).automation_condition is None
    sensors = {s.name: s for s in repository.sensor_defs}
    assert "sharded_aggregate_shards" in sensors and "plain_aggregate_shards" not in sensors
    assert sensors["sharded_aggregate_shards"].default_status == dg.DefaultSensorStatus.RUNNING


# --- a sharded suite through the real assets ---------------------------------------------------------------------


def run_in_home(home: Path, path: Path, monkeypatch: pytest.MonkeyPatch) -> SuiteRun:
    """The suite run in a state folder of its own (Dagster instance, MLflow store, caches, outputs)."""
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # the instance of this home, not the last one's
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return run_suite(load_suite(path), local_instance())


@pytest.mark.slow
def test_three_shards_give_exactly_the_numbers_of_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = run_in_home(tmp_path / "home1", write_suite(tmp_path / "p1", shards=1), monkeypatch)
    three = run_in_home(tmp_path / "home3", write_suite(tmp_path / "p3", shards=3), monkeypatch)
    assert one.success and three.success, [m.error for m in (*one.models, *three.models)]

    for a, b in zip(one.models, three.models, strict=True):  # value by value, in the same order
        pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)
        assert b.generation["requests"] == a.generation["requests"] == 40
        assert b.generation["generated"] == 40 and b.mlflow_run_id
    assert one.comparison is not None and three.comparison is not None
    pd.testing.assert_frame_equal(one.comparison.metrics, three.comparison.metrics, check_exact=True)

    # the independent reference: the oracle is wrong on every 4th item
    overall = three.metrics[three.metrics["breakdown_key"].isna()].set_index(["model", "metric"])
    assert overall.loc[("oracle", "exact_match"), "value"] == pytest.approx(30 / 40)
    assert overall.loc[("guess", "exact_match"), "value"] == pytest.approx(26 / 40)

    # item tables: the shard files together are the unsharded file, row for row
    io1 = ParquetIOManager(base_path=str(tmp_path / "home1" / "outputs"))
    io3 = ParquetIOManager(base_path=str(tmp_path / "home3" / "outputs"))
    samples = pd.read_parquet(io1.path_for(["sharded", "samples"]))
    volatile = ["latency_s", "cached"]
    for stage in ("generations", "scores"):
        for model in ("oracle", "guess"):
            whole = io1.read_model_stage(["sharded", stage], model)
            parts = io3.read_model_stage(["sharded", stage], model)
            assert whole is not None and parts is not None and len(parts) == len(whole)
            pd.testing.assert_frame_equal(in_sample_order(parts, samples).drop(columns=volatile, errors="ignore"),
                                          whole.drop(columns=volatile, errors="ignore"), check_exact=True)
            files = io3.model_stage_paths(["sharded", stage], model)
            assert files == [str(tmp_path / "home3" / "outputs" / "sharded" / stage / model / f"{s}.parquet")
                             for s in range(3)]
            for shard, file in enumerate(files):
                assert set(pd.read_parquet(file)["sample_id"]) == {
                    i for i in samples["sample_id"] if reference_shard(i, 3) == shard}
    oracle = three.models[0]
    assert oracle.outputs["generations/2"] == files[2].replace("/scores/", "/generations/").replace("guess", "oracle")
    assert io1.model_stage_paths(["sharded", "generations"], "oracle") == [io1.path_for(["sharded", "generations"],
                                                                                         "oracle")]
    assert io1.read_model_stage(["sharded", "generations"], "nobody") is None

    instance = local_instance()  # home3's: one run per shard and one aggregation per model
    runs = instance.get_runs(filters=dg.RunsFilter(job_name="sharded_eval"))
    assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(
        f"{m}|{s}" for m in ("oracle", "guess") for s in range(3))
    aggregations = instance.get_runs(filters=dg.RunsFilter(job_name="sharded_aggregate"))
    assert sorted(r.tags["dagster/partition"] for r in aggregations) == ["guess", "oracle"]


def test_empty_shards_work_end_to_end(eval_home: Path, tmp_path: Path) -> None:
    path = write_suite(tmp_path / "p", "tiny_sharded", shards=4, rows=2, baseline=False)
    suite = load_suite(path)
    occupied = {reference_shard(r, 4) for r in ("qa-001", "qa-002")}
    assert len(occupied) <= 2  # two shards at least hold no item
    result = run_suite(suite, local_instance(), models=["oracle"], resources=temporary_resources(tmp_path / "state"))
    assert result.success, [m.error for m in result.models]
    oracle = result.models[0]
    assert oracle.generation["requests"] == 2 and oracle.generation["errors"] == 0
    overall = oracle.metrics[oracle.metrics["breakdown_key"].isna()].set_index("metric")
    assert overall.loc["exact_match", "n"] == 2 and overall.loc["exact_match", "value"] == pytest.approx(1 / 2)
    for shard in range(4):
        table = pq.read_table(oracle.outputs[f"generations/{shard}"])
        assert (table.num_rows > 0) == (shard in occupied)
        assert pq.read_table(oracle.outputs[f"scores/{shard}"]).num_rows == 2 * table.num_rows


@pytest.mark.slow
def test_cli_runs_a_sharded_suite(eval_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_suite(tmp_path / "p", "cli_sharded", shards=2, rows=8, baseline=False)
    monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(path.parent))
    assert main(["run", str(path), "--model", "oracle", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["success"] is True
    outputs = payload["outputs"]["oracle"]
    assert set(outputs) >= {"generations/0", "generations/1", "scores/0", "scores/1", "metrics"}
    assert sum(pq.read_table(outputs[f"generations/{s}"]).num_rows for s in range(2)) == 8
    assert payload["generation"]["oracle"]["requests"] == 8
    assert main(["run", str(path), "--model", "oracle"]) == 0
    text = capsys.readouterr().out
    assert "generation: 8 requests" in text and "exact_match" in text  # the counts of both shards, summed
    assert main(["list"]) == 0
    assert "cli_sharded: data/qa.jsonl | models: oracle (precomputed), guess (precomputed) | 2 shards" in \
        capsys.readouterr().out


def test_summed_counts() -> None:
    shards = [{"requests": 3, "cached": 1, "cost_usd": 0.5, "latency_p50_s": 0.2, "backend": "x"},
              {"requests": 0, "cached": 0, "cost_usd": 0.0, "latency_p50_s": 0.0, "backend": "x"},
              {"requests": 4, "cached": 4, "cost_usd": 0.25, "latency_p50_s": 0.1, "backend": "x"}]
    assert summed_counts(shards) == {"requests": 7, "cached": 5, "cost_usd": 0.75, "backend": "x"}


def test_tables_by_model_regroups_shards() -> None:
    samples = pd.DataFrame({"sample_id": ["a", "b", "c", "d"]})
    frame = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "v": [1, 2, 3, 4]})
    sharded = {f"m|{s}": frame[[reference_shard(i, 2) == s for i in frame["sample_id"]]] for s in (1, 0)}
    sharded |= {f"n|{s}": frame.assign(v=frame["v"] * 10)[[reference_shard(i, 2) == s for i in frame["sample_id"]]]
                for s in (0, 1)}
    regrouped = tables_by_model(sharded, samples)
    assert sorted(regrouped) == ["m", "n"]
    pd.testing.assert_frame_equal(regrouped["m"], frame)
    assert regrouped["n"]["v"].tolist() == [10, 20, 30, 40]
    plain = tables_by_model({"m": frame}, samples)
    assert plain["m"] is frame


# --- sensors, schedule, automation -------------------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as test_instance:
        yield test_instance


def test_checkpoint_sensor_requests_one_run_per_shard(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    checkpoints = tmp_path / "checkpoints"
    suite = load_suite(write_suite(tmp_path / "p", shards=3, baseline=False, watch={"dir": str(checkpoints)}))
    defs = build_definitions([suite], temporary_resources(tmp_path))
    sensor = defs.resolve_sensor_def("sharded_new_checkpoints")
    assert sensor.job_name == "sharded_eval"
    make_checkpoint(checkpoints, "ckpt-1")
    make_checkpoint(checkpoints, "ckpt-2")
    data = tick(sensor, instance, defs)
    assert [(r.partition_key, r.run_key) for r in data.run_requests] == [
        (f"ckpt-{c}|{s}", f"checkpoint:ckpt-{c}:shard{s}") for c in (1, 2) for s in range(3)]
    assert all(r.tags["eval/trigger"] == "new_checkpoint" for r in data.run_requests)
    backend = suite.model("ckpt-1").backend  # the run queue limits runs per backend: every request names it
    assert {(r.tags["eval/suite"], r.tags["eval/model"], r.tags["eval/backend"]) for r in data.run_requests} == {
        ("sharded", f"ckpt-{c}", backend) for c in (1, 2)}
    apply_partition_requests(instance, data)
    assert tick(sensor, instance, defs).run_requests == []  # each once


def test_an_unsharded_checkpoint_sensor_keeps_its_run_keys(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    checkpoints = tmp_path / "checkpoints"
    suite = load_suite(write_suite(tmp_path / "p", shards=1, baseline=False, watch={"dir": str(checkpoints)}))
    make_checkpoint(checkpoints, "ckpt-1")
    data = tick(new_checkpoint_sensor(suite, suite_eval_job(suite)), instance,
                build_definitions([suite], temporary_resources(tmp_path)))
    assert [(r.partition_key, r.run_key) for r in data.run_requests] == [("ckpt-1", "checkpoint:ckpt-1")]


def test_nightly_schedule_requests_every_shard(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    suite = load_suite(write_suite(tmp_path / "p", shards=2, baseline=False, schedule="0 1 * * *"))
    defs = build_definitions([suite], temporary_resources(tmp_path))
    instance.add_dynamic_partitions("sharded_models", ["oracle", "guess"])
    context = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def(),
                                        scheduled_execution_time=dt.datetime(2026, 1, 2, 1, 0, tzinfo=dt.UTC))
    requests = list(defs.resolve_schedule_def("sharded_nightly").evaluate_tick(context).run_requests or [])
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (f"{m}|{s}", f"2026-01-02:{m}:shard{s}") for m in ("guess", "oracle") for s in range(2)]
    assert [(r.tags["eval/model"], r.tags["eval/backend"]) for r in requests] == [
        (m, suite.model(m).backend) for m in ("guess", "oracle") for _shard in range(2)]


def test_aggregation_fires_once_all_shards_are_done(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    suite = load_suite(write_suite(tmp_path / "p", shards=3, rows=10, baseline=False))
    defs = build_definitions([suite], temporary_resources(tmp_path))
    instance.add_dynamic_partitions("sharded_models", ["oracle", "guess"])
    job = defs.resolve_job_def("sharded_eval")
    metrics = dg.AssetKey(["sharded", "metrics"])
    selection = dg.AssetSelection.assets(metrics)

    def requested(cursor: object = None) -> tuple[set[str], object]:
        result = dg.evaluate_automation_conditions(defs, instance, asset_selection=selection, cursor=cursor)
        return set(result.get_requested_partitions(metrics)), result.cursor

    done, cursor = requested()
    assert done == set()  # no shard yet
    for key in shard_keys(suite, "oracle")[:2]:
        assert job.execute_in_process(instance=instance, partition_key=key).success
    done, cursor = requested(cursor)
    assert done == set()  # shard 2 of oracle is missing
    assert job.execute_in_process(instance=instance, partition_key=shard_keys(suite, "oracle")[2]).success
    done, cursor = requested(cursor)
    assert done == {"oracle"}  # all three shards: the model is aggregated (guess has none yet)
    defs.resolve_job_def("sharded_aggregate").execute_in_process(instance=instance, partition_key="oracle")
    done, cursor = requested(cursor)
    assert done == set()  # once


# --- a rollout suite in shards -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_rollout_suite_in_two_shards(eval_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent rollouts split into shards: each task's group in one shard, the metrics over all of them."""
    from tests.fakes import FakeLLMServer
    from tests.test_rollout_suites import CALCULATOR, SUITES, CountedAnswers, overall, read_jsonl, reference_metrics

    tasks = read_jsonl(CALCULATOR, limit=4)
    expected = {t["prompt"]: int(t["expected"]) for t in tasks}
    correct = dict(zip(expected, [3, 2, 1, 0], strict=True))
    calls = {p: [{"name": "calculate", "arguments": {"expression": re.match(r"What is (.+?)\?", p)[1]}}]  # type: ignore[index]
             for p in expected}
    spec = yaml.safe_load((SUITES / "calculator_policy.yaml").read_text())
    spec["dataset"]["uri"] = str(CALCULATOR)
    spec["shards"] = 2
    path = tmp_path / "calculator_sharded.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    answers = CountedAnswers(expected, correct)
    with FakeLLMServer(answer=answers, tool_calls=calls, known_models={"served-model"}) as fake:
        monkeypatch.setenv("FAKE_LLM_URL", fake.url)
        result = run_suite(load_suite(path), local_instance())
        assert result.success, result.models[0].error
        assert fake.requests_total == 4 * 3 * 2  # every rollout once, in one shard or the other
    [run] = result.models
    io = ParquetIOManager(base_path=str(eval_home / "outputs"))
    rollouts = io.read_model_stage(["calculator_policy", "rollouts"], "policy")
    assert rollouts is not None and len(rollouts) == 12
    for shard in range(2):
        part = pd.read_parquet(run.outputs[f"rollouts/{shard}"])
        assert {reference_shard(i, 2) for i in part["sample_id"]} <= {shard}
    got, ref = overall(run.metrics), reference_metrics(rollouts, [1, 2, 3])
    for name, value in ref.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert got["pass@3"] == pytest.approx(3 / 4) and got["pass^3"] == pytest.approx(1 / 4)
    assert run.generation["rollouts"] == 12 and run.generation["ran"] == 12


# --- a judged suite with a baseline in shards --------------------------------------------------------------------


@pytest.mark.slow
def test_a_judged_suite_in_shards_matches_one_shard(tmp_path: Path, aws_env: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Judgments per shard, judge agreement, the paired comparison and pairwise judging over regrouped shards: the
    same tables as one shard, value by value."""
    from tests.fakes import FakeLLMServer
    from tests.fakes.judge import ModelRouter, scripted_judge
    from tests.test_judge_pipeline import BASE, BASE_RIGHT, JUDGE, TUNED, TUNED_RIGHT, N, answer, correctness
    from tests.test_judge_pipeline import write_suite as write_judged_suite

    router = ModelRouter({BASE: answer(BASE_RIGHT), TUNED: answer(TUNED_RIGHT), JUDGE: scripted_judge(correctness)})
    results = {}
    with FakeLLMServer(answer=router, known_models=set(router.responders)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        for shards in (1, 3):
            path = write_judged_suite(tmp_path / f"p{shards}")
            path.write_text(path.read_text() + f"shards: {shards}\n")
            results[shards] = run_in_home(tmp_path / f"home{shards}", path, monkeypatch)
            assert results[shards].success, [m.error for m in results[shards].models]
    one, three = results[1], results[3]
    pd.testing.assert_frame_equal(one.metrics, three.metrics, check_exact=True)
    assert one.comparison is not None and three.comparison is not None
    pd.testing.assert_frame_equal(one.comparison.metrics, three.comparison.metrics, check_exact=True)
    pairwise = [pd.read_parquet(r.comparison.outputs["pairwise"]).drop(columns=["latency_s", "cached"],
                                                                        errors="ignore") for r in (one, three)]
    pd.testing.assert_frame_equal(pairwise[0], pairwise[1], check_exact=True)
    correct = three.metrics[(three.metrics["metric"] == "Correctness") & three.metrics["breakdown_key"].isna()]
    assert correct.set_index("model")["value"].to_dict() == {"base": BASE_RIGHT / N, "tuned": TUNED_RIGHT / N}
    io3 = ParquetIOManager(base_path=str(tmp_path / "home3" / "outputs"))
    judgments = io3.read_model_stage(["judged", "judgments"], "base")
    assert judgments is not None and len(judgments) == 3 * N and judgments["error"].isna().all()
    assert three.models[0].judging["requests"] == 3 * N


def test_tables_by_model_of_a_single_partition() -> None:
    """One partition loaded through an ``AllPartitionMapping`` arrives as its table, not a dict."""
    samples = pd.DataFrame({"sample_id": ["a", "b"]})
    frame = pd.DataFrame({"sample_id": ["a", "b"], "model": ["m", "m"], "v": [1, 2]})
    result = tables_by_model(frame, samples)
    assert list(result) == ["m"] and result["m"] is frame
    assert tables_by_model(frame.iloc[0:0], samples) == {}


def test_read_model_stage_reads_both_layouts(tmp_path: Path) -> None:
    io = ParquetIOManager(base_path=str(tmp_path / "outputs"))
    stage = tmp_path / "outputs" / "s" / "generations"
    (stage / "sharded").mkdir(parents=True)
    whole = pd.DataFrame({"sample_id": ["a", "b"], "v": [1.0, 2.0]})
    whole.to_parquet(stage / "plain.parquet", index=False)
    parts = [pd.DataFrame({"sample_id": [f"x{s}"] * (s % 3), "v": [float(s)] * (s % 3)}) for s in range(12)]
    for shard, part in enumerate(parts):
        part.to_parquet(stage / "sharded" / f"{shard}.parquet", index=False)
    assert io.model_stage_paths(["s", "generations"], "plain") == [str(stage / "plain.parquet")]
    pd.testing.assert_frame_equal(io.read_model_stage(["s", "generations"], "plain"), whole)
    assert io.model_stage_paths(["s", "generations"], "sharded") == [str(stage / "sharded" / f"{s}.parquet")
                                                                     for s in range(12)]  # 10 and 11 after 9
    got = io.read_model_stage(["s", "generations"], "sharded")
    assert got is not None
    assert got["v"].tolist() == [float(s) for s in range(12) for _ in range(s % 3)]  # shard order, empties too
    assert io.model_stage_paths(["s", "generations"], "missing") == []
    assert io.read_model_stage(["s", "generations"], "missing") is None
