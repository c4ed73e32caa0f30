"""A sharded suite on a real ``dagster-webserver`` + ``dagster-daemon``: a backfill over 2 models × 2 shards, then the
suite's automation sensor aggregates each model exactly once, after all its shards (read from the instance's
event log and the Parquet the runs wrote)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from tests.dagster_live import live_dagster

pytestmark = pytest.mark.slow

ITEMS = [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "referenceResponse": str(2 * i),
          "category": "even" if i % 2 == 0 else "odd"} for i in range(1, 9)]
RESPONSES = {"oracle": {r["id"]: r["referenceResponse"] for r in ITEMS},
             "half": {r["id"]: r["referenceResponse"] if i % 2 else "no" for i, r in enumerate(ITEMS)}}
SHARDS = 2
BACKFILL_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 240.0
AGGREGATION_TIMEOUT_S = 180.0  # the automation sensor ticks every 30 s
QUIET_S = 75.0  # two more ticks after the aggregation: nothing else is requested


def _write_suite(root: Path) -> Path:
    suites, data = root / "suites", root / "data"
    suites.mkdir(parents=True)
    data.mkdir(parents=True)
    (data / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ITEMS))
    models = []
    for name, answers in RESPONSES.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps({"sample_id": k, "response": v}) + "\n"
                                                    for k, v in answers.items()))
        models.append({"name": name, "backend": "precomputed", "responses": str(data / f"{name}.jsonl")})
    spec = {"suite": "split", "dataset": {"uri": str(data / "qa.jsonl")}, "models": models,
            "scorers": ["exact_match"], "schedule": None, "shards": SHARDS}
    (suites / "split.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return suites


def test_backfill_of_shards_then_one_aggregation_per_model(tmp_path: Path) -> None:
    suites = _write_suite(tmp_path)
    with live_dagster(tmp_path / "deployment", suites) as live:
        for model in RESPONSES:
            live.add_dynamic_partition("split_models", model)
        partitions = [f"{model}|{shard}" for model in sorted(RESPONSES) for shard in range(SHARDS)]
        assert set(partitions) <= set(live.partition_keys("split_eval"))
        backfill_id = live.launch_backfill("split_eval", partitions)

        def backfill_runs() -> list[dict[str, object]] | None:
            runs = live.runs(job="split_eval", tags={"dagster/backfill": backfill_id})
            return runs if len(runs) == len(partitions) else None

        runs = live.wait_until(backfill_runs, BACKFILL_TIMEOUT_S, "the backfill to launch every shard",
                               diagnostics=lambda: f"backfill: {live.backfill(backfill_id)}")
        finished = [live.wait_for_run(str(run["runId"]), RUN_TIMEOUT_S) for run in runs]
        assert sorted(run["tags"]["dagster/partition"] for run in finished) == partitions

        metrics_key = dg.AssetKey(["split", "metrics"])
        with dg.DagsterInstance.from_config(str(live.dagster_home)) as instance:
            def aggregated() -> list[str] | None:
                records = instance.fetch_materializations(metrics_key, limit=100).records
                keys = sorted(str(r.partition_key) for r in records)
                return keys if len(keys) >= len(RESPONSES) else None

            keys = live.wait_until(aggregated, AGGREGATION_TIMEOUT_S, "the automation sensor to aggregate each model",
                                   diagnostics=lambda: f"ticks: {live.sensor_ticks('split_aggregate_shards')}")
            time.sleep(QUIET_S)
            records = instance.fetch_materializations(metrics_key, limit=100).records
            assert sorted(str(r.partition_key) for r in records) == keys == sorted(RESPONSES)  # once per model
            for record in records:  # each aggregation came after the last of its model's shards
                shards = [key for key in partitions if key.startswith(f"{record.partition_key}|")]
                last_shard = max(r.timestamp for r in instance.fetch_materializations(dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey(["split", "scores"]), asset_partitions=shards), limit=10).records)
                assert record.timestamp > last_shard

        for model, answers in RESPONSES.items():
            metrics = pd.read_parquet(live.state_home / "outputs" / "split" / "metrics" / f"{model}.parquet")
            exact = metrics[(metrics["metric"] == "exact_match") & metrics["breakdown_key"].isna()].iloc[0]
            right = sum(answers[r["id"]] == r["referenceResponse"] for r in ITEMS)
            assert (exact["value"], exact["n"]) == (pytest.approx(right / len(ITEMS)), len(ITEMS)), model
            files = sorted((live.state_home / "outputs" / "split" / "generations" / model).glob("*.parquet"))
            assert [f.name for f in files] == [f"{s}.parquet" for s in range(SHARDS)]
            assert sum(len(pd.read_parquet(f)) for f in files) == len(ITEMS)
