"""``eval-pipeline backfill``: the plan (one backfill per backend, model × shard keys, queue tags), the progress read
from Dagster's GraphQL answer, the progress line's rate and time left (clock injected), the exit code; and a real
submission through the ``launchPartitionBackfill`` mutation to a fresh instance, read back from the instance."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from eval_pipeline.backfills import (
    AggregationProgress,
    BackfillProgress,
    RateMeter,
    SuiteAssets,
    backfill_asset_keys,
    plan_backfills,
    progress_from_graphql,
)
from eval_pipeline.cli_backfill import follow_aggregation, report_outcome, watch_backfills
from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites import load_suite

REPO = Path(__file__).resolve().parent.parent
KEYS = SuiteAssets((("mix", "generations"), ("mix", "samples"), ("mix", "scores")), (("mix", "metrics"),))


def _write_suite(folder: Path, shards: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    items = [{"id": f"q{i}", "prompt": f"What is {i}?", "referenceResponse": str(i)} for i in range(6)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    for name in ("right", "wrong"):
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps({"sample_id": item["id"], "response": item["referenceResponse"] if name == "right" else "x"})
            + "\n" for item in items))
    spec = {
        "suite": "mix",
        "dataset": {"uri": str(folder / "qa.jsonl")},
        "models": [
            {"name": "right", "backend": "precomputed", "responses": str(folder / "right.jsonl")},
            {"name": "remote", "backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "served"},
            {"name": "wrong", "backend": "precomputed", "responses": str(folder / "wrong.jsonl")},
        ],
        "scorers": ["exact_match"],
        "shards": shards,
        "schedule": None,
    }
    path = folder / "mix.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_one_backfill_per_backend_over_model_shard_keys(tmp_path: Path) -> None:
    suite = load_suite(_write_suite(tmp_path, shards=3))
    plans = plan_backfills(suite, None, KEYS)
    assert [(p.backend, p.models) for p in plans] == [("precomputed", ("right", "wrong")), ("openai", ("remote",))]
    assert plans[0].partition_keys == ("right|0", "right|1", "right|2", "wrong|0", "wrong|1", "wrong|2")
    assert plans[1].partition_keys == ("remote|0", "remote|1", "remote|2")
    assert plans[0].tags == {"eval/suite": "mix", "eval/backend": "precomputed"}
    params = plans[1].graphql_params()
    assert params["assetSelection"] == [{"path": list(key)} for key in KEYS.backfilled]
    assert plans[1].automated_keys == (("mix", "metrics"),)
    assert params["partitionNames"] == ["remote|0", "remote|1", "remote|2"]
    assert {"key": "eval/backend", "value": "openai"} in params["tags"]


def test_chosen_models_unsharded(tmp_path: Path) -> None:
    suite = load_suite(_write_suite(tmp_path, shards=1))
    plans = plan_backfills(suite, ["wrong", "wrong"], KEYS)
    assert [(p.backend, p.models, p.partition_keys) for p in plans] == [("precomputed", ("wrong",), ("wrong",))]
    with pytest.raises(EvalInputError, match=r"suite mix has no model 'nope' \(its models: right, remote, wrong\)"):
        plan_backfills(suite, ["right", "nope"], KEYS)


def test_assets_of_the_suite_split_into_backfilled_and_automated(tmp_path: Path) -> None:
    spec = yaml.safe_load(_write_suite(tmp_path, shards=2).read_text())
    spec["baseline"] = "right"
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(spec))
    suite = load_suite(tmp_path / "mix.yaml")
    groups = {dg.AssetKey(["mix", stage]): "mix" for stage in ("samples", "generations", "scores", "metrics")}
    groups |= {dg.AssetKey(["mix", "comparison"]): "mix", dg.AssetKey(["other", "samples"]): "other",
               dg.AssetKey(["mix", "promotion"]): "mix"}
    metrics = dg.AssetKey(["mix", "metrics"])
    children = {metrics: {dg.AssetKey(["mix", "promotion"]), dg.AssetKey(["mix", "comparison"])}}
    per_item = (("mix", "generations"), ("mix", "samples"), ("mix", "scores"))
    assert backfill_asset_keys(suite, groups, {metrics}, children) == SuiteAssets(per_item, (("mix", "metrics"),))
    unsharded = backfill_asset_keys(suite, groups, set(), children)  # no automation: every stage but the comparison
    assert unsharded == SuiteAssets(tuple(sorted([*per_item, ("mix", "metrics"), ("mix", "promotion")])))


def test_follow_the_aggregation_to_its_outcome() -> None:
    script = [AggregationProgress(2, [], []), AggregationProgress(2, ["m/metrics[a]"], []),
              AggregationProgress(2, ["m/metrics[a]"], ["m/metrics[b]: run r9 failed"])]
    slept, out, err = [], io.StringIO(), io.StringIO()
    code = follow_aggregation([lambda: script.pop(0)], poll_s=3.0, sleep=slept.append, out=out, err=err)
    assert code == 1 and slept == [3.0, 3.0]
    assert out.getvalue().splitlines() == [
        "aggregation (the suite's automation sensor): 0/2 model partitions materialized",
        "aggregation (the suite's automation sensor): 1/2 model partitions materialized"]
    assert err.getvalue() == "FAILED: aggregation m/metrics[b]: run r9 failed\n"
    assert follow_aggregation([lambda: AggregationProgress(1, ["x"], [])], sleep=slept.append,
                              out=io.StringIO()) == 0


def _status(path: list[str], targeted: int, in_progress: int, done: int, failed: int) -> dict[str, object]:
    return {"__typename": "AssetPartitionsStatusCounts", "assetKey": {"path": path},
            "numPartitionsTargeted": targeted, "numPartitionsInProgress": in_progress,
            "numPartitionsMaterialized": done, "numPartitionsFailed": failed}


def test_progress_counts_every_asset_partition_once() -> None:
    answer = {"id": "abc", "status": "REQUESTED", "error": None, "assetBackfillData": {"assetBackfillStatuses": [
        {"__typename": "UnpartitionedAssetStatus", "assetKey": {"path": ["s", "samples"]}, "inProgress": False,
         "materialized": True, "failed": False},
        _status(["s", "generations"], 4, 1, 2, 1),
        _status(["s", "scores"], 4, 0, 2, 0),
        _status(["s", "metrics"], 2, 0, 0, 0),
    ]}}
    progress = progress_from_graphql(answer)
    assert (progress.targeted, progress.materialized, progress.failed, progress.in_progress) == (11, 5, 1, 1)
    assert progress.done == 6 and not progress.finished and not progress.succeeded


def _progress(done: int, targeted: int = 20, status: str = "REQUESTED", failed: int = 0,
              backfill_id: str = "abc") -> BackfillProgress:
    return BackfillProgress(backfill_id, status, targeted, done - failed, failed, 1)


def test_rate_and_time_left_from_the_injected_clock() -> None:
    now = [100.0]
    meter = RateMeter(lambda: now[0])
    assert meter.line(_progress(2)) == ("backfill abc: 2/20 asset partitions, rate: -, time left: -, "
                                        "1 in progress, REQUESTED")
    now[0] = 104.0  # 6 more in 4 s: 1.5/s; 12 left: 8 s
    assert meter.line(_progress(8)) == ("backfill abc: 8/20 asset partitions, 1.50/s, ~8 s left, 1 in progress, "
                                        "REQUESTED")
    now[0] = 1104.0  # 15 since the first line, in 1004 s; 3 left at 15/1004 per s: 200.8 s
    assert meter.line(_progress(17, failed=2)).startswith(
        "backfill abc: 17/20 asset partitions (2 failed), 0.01/s, ~3 min 21 s left")


def test_watch_until_the_end_then_the_exit_code() -> None:
    script = {"a": [_progress(0, 11, backfill_id="a"), _progress(0, 11, backfill_id="a"),
                    _progress(11, 11, "COMPLETED_SUCCESS", backfill_id="a")],
              "b": [_progress(3, 11, backfill_id="b"), _progress(11, 11, "COMPLETED_FAILED", 2, backfill_id="b")]}
    clock, slept, out = [0.0], [], io.StringIO()

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    finals = watch_backfills(["a", "b"], lambda backfill_id: script[backfill_id].pop(0), poll_s=2.0,
                             clock=lambda: clock[0], sleep=sleep, out=out)
    assert [f.status for f in finals] == ["COMPLETED_SUCCESS", "COMPLETED_FAILED"]
    assert slept == [2.0, 2.0]  # three polls of a, two of b (b finished on the second)
    assert len(out.getvalue().splitlines()) == 4  # a's repeated 0/11 is not printed again
    err = io.StringIO()
    code = report_outcome(finals, lambda backfill_id: [f"run r1 failed ({backfill_id})"], out=io.StringIO(), err=err)
    assert code == 1
    assert err.getvalue().splitlines() == ["backfill b: FAILED (COMPLETED_FAILED), 2 of 11 asset partitions failed",
                                           "  run r1 failed (b)"]
    assert report_outcome(finals[:1], lambda _id: [], out=io.StringIO(), err=io.StringIO()) == 0


@pytest.mark.slow
def test_backfill_is_submitted_to_the_instance(tmp_path: Path) -> None:
    """The real command in a fresh process (no daemon): the mutation records an asset backfill of the model × shard
    partitions with the queue tags, one per backend; the instance holds them as submitted."""
    suites = tmp_path / "suites"
    _write_suite(suites, shards=2)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "EVAL_PIPELINE_", "MLFLOW_"))}
    env.update(EVAL_PIPELINE_HOME=str(home), EVAL_PIPELINE_SUITES=str(suites), MLFLOW_DISABLE_TELEMETRY="true")
    done = subprocess.run([sys.executable, "-m", "eval_pipeline.cli", "backfill", "--suite", "mix",
                           "--models", "wrong,remote,right"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("backfill ")]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "suite mix, models wrong, right (precomputed), 4 partitions",
        "suite mix, models remote (openai), 2 partitions"]
    assert "no dagster-daemon is running" in done.stderr

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    try:
        backfills = {b.backfill_id: b for b in instance.get_backfills()}
        ids = [line.split()[1].rstrip(":") for line in lines]
        assert set(backfills) == set(ids)
        first, second = backfills[ids[0]], backfills[ids[1]]
        assert first.tags == {"eval/suite": "mix", "eval/backend": "precomputed"}
        assert second.tags == {"eval/suite": "mix", "eval/backend": "openai"}
        assert first.status.value == "REQUESTED" and first.is_asset_backfill
        assert sorted(key.to_user_string() for key in first.asset_selection) == [  # metrics: by automation
            "mix/generations", "mix/samples", "mix/scores"]
        assert set(instance.get_dynamic_partitions("mix_models")) == {"right", "remote", "wrong"}
        assert instance.get_runs() == []  # nothing runs without a daemon
    finally:
        instance.dispose()
