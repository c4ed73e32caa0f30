"""What the Dagster UI shows of a suite: metric values as numeric metadata (charted across materializations), each
stage's columns, the MLflow run, the same suite/model tags on CLI and UI runs, and the full run id the CLI prints."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from eval_pipeline.assets.metadata import MAX_PLOTTED_METRICS, metric_values, mlflow_run_metadata
from eval_pipeline.cli import main
from eval_pipeline.data.schemas import BY_STAGE
from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suite_definitions import build_definitions, default_resources
from eval_pipeline.suites import load_suite

REPO = Path(__file__).resolve().parent.parent
RUN_ID = re.compile(r"\(Dagster run ([0-9a-f-]+)\)")


def precomputed_suite(folder: Path) -> Path:
    """Two precomputed models over the example QA items: ``oracle`` wrong on every 4th item, ``blank`` always."""
    data = folder / "data"
    data.mkdir(parents=True)
    rows = [json.loads(line) for line in (REPO / "examples" / "data" / "gen_qa.jsonl").read_text().splitlines()]
    (data / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "oracle.jsonl").write_text("".join(
        json.dumps({"sample_id": r["id"], "response": r["referenceResponse"] if i % 4 else "no idea"}) + "\n"
        for i, r in enumerate(rows)))
    (data / "blank.jsonl").write_text("".join(json.dumps({"sample_id": r["id"], "response": "?"}) + "\n"
                                              for r in rows))
    path = folder / "evals" / "plotted.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("""\
suite: plotted
dataset: {uri: data/qa.jsonl}
models:
  - {name: oracle, backend: precomputed, responses: data/oracle.jsonl}
  - {name: blank, backend: precomputed, responses: data/blank.jsonl}
scorers: [exact_match, f1]
breakdown_keys: [category]
""")
    return path


def materializations(instance: dg.DagsterInstance, stage: str, partition: str | None = None) -> list:
    """The stage's materializations, oldest first."""
    records = instance.fetch_materializations(dg.AssetKey(["plotted", stage]), limit=100).records
    found = [r.asset_materialization for r in reversed(records)]
    return [m for m in found if partition is None or m.partition == partition]


def test_metric_values_are_numeric_metadata_of_each_materialization(eval_home: Path, tmp_path: Path) -> None:
    suite = load_suite(precomputed_suite(tmp_path / "project"))
    instance = local_instance()
    first = run_suite(suite, instance, models=["oracle"], limit=4)
    second = run_suite(suite, instance, models=["oracle"], limit=12)
    assert first.success and second.success

    history = materializations(instance, "metrics", "oracle")
    assert len(history) == 2
    for run, materialization, expected_exact in [(first, history[0], 3 / 4), (second, history[1], 9 / 12)]:
        metadata = materialization.metadata
        # the value by hand: the oracle answers every 4th item wrongly
        assert isinstance(metadata["metric/exact_match"], dg.FloatMetadataValue)
        assert metadata["metric/exact_match"].value == pytest.approx(expected_exact)
        assert metadata["metric/exact_match/n"].value == (4 if run is first else 12)
        overall = run.models[0].metrics[run.models[0].metrics["breakdown_key"].isna()].set_index("metric")
        for metric, row in overall.iterrows():
            assert metadata[f"metric/{metric}"].value == pytest.approx(row["value"])
            assert metadata[f"metric/{metric}/ci_low"].value == pytest.approx(row["ci_low"])
            assert metadata[f"metric/{metric}/ci_high"].value == pytest.approx(row["ci_high"])
            assert metadata[f"metric/{metric}/n"].value == row["n"]
        plotted = {key for key in metadata if key.startswith("metric/")}
        assert plotted == {f"metric/{m}{part}" for m in overall.index for part in ("", "/ci_low", "/ci_high", "/n")}
        # a local store: the run is named by its id
        assert metadata["mlflow_run"] == dg.MetadataValue.text(run.models[0].mlflow_run_id)


def test_metric_values_take_overall_rows_only_and_are_bounded() -> None:
    rows = [{"metric": f"m{i}", "breakdown_key": None, "breakdown_value": None, "value": i / 100,
             "ci_low": None if i == 0 else 0.0, "ci_high": 1.0, "n": 10} for i in range(MAX_PLOTTED_METRICS + 5)]
    rows += [{"metric": "m1", "breakdown_key": "category", "breakdown_value": "x", "value": 0.9, "ci_low": 0.0,
              "ci_high": 1.0, "n": 3}]
    entries = metric_values(pd.DataFrame(rows))
    assert entries["metric/m1"] == 0.01 and entries["metric/m1/n"] == 10  # the overall row, not the breakdown
    assert "metric/m0/ci_low" not in entries  # no value, no entry
    assert f"metric/m{MAX_PLOTTED_METRICS}" not in entries
    assert len(entries) == 4 * MAX_PLOTTED_METRICS - 1


def test_mlflow_run_is_a_link_on_a_tracking_server() -> None:
    link = mlflow_run_metadata("http://127.0.0.1:5000/", "abc123", experiment_id="7")
    assert link == {"mlflow_run": dg.MetadataValue.url("http://127.0.0.1:5000/#/experiments/7/runs/abc123"),
                    "mlflow_experiment": dg.MetadataValue.url(  # opens on the runs, not MLflow's GenAI overview
                        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")}
    assert mlflow_run_metadata("sqlite:///x/mlflow.db", "abc123") == {"mlflow_run": dg.MetadataValue.text("abc123")}
    assert mlflow_run_metadata("http://127.0.0.1:5000", None) == {}


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 (SQLite behind it), for this test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = tmp_path / "mlflow-server"
    store.mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}", "--default-artifact-root", str(store / "art")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # polls, not a timing assertion: a server that never answers fails below
            if server.poll() is not None:
                break
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.RequestException:  # not up yet, or too slow to answer under load
                time.sleep(0.1)
        assert requests.get(f"{url}/health", timeout=5).ok
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_run_on_a_tracking_server_is_linked(eval_home: Path, tmp_path: Path, tracking_server: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    suite = load_suite(precomputed_suite(tmp_path / "project"))
    instance = local_instance()
    result = run_suite(suite, instance, models=["oracle"], limit=4)
    assert result.success, result.models[0].error
    run_id = result.models[0].mlflow_run_id
    experiment_id = MlflowClient(tracking_server).get_run(run_id).info.experiment_id
    [materialization] = materializations(instance, "metrics", "oracle")
    link = materialization.metadata["mlflow_run"]
    assert isinstance(link, dg.UrlMetadataValue)
    assert link.url == f"{tracking_server}/#/experiments/{experiment_id}/runs/{run_id}"
    assert requests.get(link.url, timeout=10).ok  # the server's UI answers the page


SCORES_COLUMNS = [("sample_id", "string"), ("model", "string"), ("sample_index", "int64"), ("scorer", "string"),
                  ("score", "double"), ("extracted", "string"), ("request_hash", "string"), ("error", "string")]


def test_every_stage_materialization_carries_its_column_schema(eval_home: Path, tmp_path: Path) -> None:
    suite = load_suite(precomputed_suite(tmp_path / "project"))
    instance = local_instance()
    assert run_suite(suite, instance, models=["oracle"], limit=4).success
    for stage in ("samples", "generations", "scores", "metrics"):
        [materialization] = materializations(instance, stage)
        schema = materialization.metadata["dagster/column_schema"].schema
        assert [(c.name, c.type) for c in schema.columns] == [(f.name, str(f.type)) for f in BY_STAGE[stage]]
    [scores] = materializations(instance, "scores")
    assert [(c.name, c.type) for c in scores.metadata["dagster/column_schema"].schema.columns] == SCORES_COLUMNS

    # the pages explain (tests/test_dagster_pages.py reads them whole): each output beside its prompt and reference,
    # the summary's stderr and interval method, the gate's verdict on the metrics asset itself
    outputs = eval_home / "outputs" / "plotted"
    generations = pd.read_parquet(outputs / "generations" / "oracle.parquet")
    samples = pd.read_parquet(outputs / "samples.parquet").set_index("sample_id")
    [produced] = materializations(instance, "generations")
    lines = produced.metadata["preview"].value.splitlines()
    assert lines[0].startswith("| sample_id | sample_index | input | reference | output |")
    for line, row in zip(lines[2:], generations.itertuples(index=False), strict=True):
        assert line.startswith(f"| {row.sample_id} | {row.sample_index} | {samples.loc[row.sample_id, 'input']} | "
                               f"{samples.loc[row.sample_id, 'reference']} | {row.output} |")
    [metrics] = materializations(instance, "metrics")
    assert metrics.metadata["summary"].value.startswith("| metric | value | stderr | 95% CI | CI method | n |")
    assert metrics.metadata["gates"].value.splitlines()[2].startswith("| error_rate | oracle | passed | 0 | 0 |")


def test_ui_launches_carry_the_cli_tags_and_the_cli_prints_the_full_run_id(
        eval_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = precomputed_suite(tmp_path / "project")
    assert main(["run", str(path), "--limit", "4"]) == 0
    printed = RUN_ID.findall(capsys.readouterr().out)
    instance = local_instance()
    assert len(printed) == 2
    cli_runs = {model: instance.get_run_by_id(run_id)
                for model, run_id in zip(["oracle", "blank"], printed, strict=True)}
    assert all(run is not None for run in cli_runs.values())  # the full id finds the run
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {run_id}  plotted_eval" in listing for run_id in printed)  # past runs: the full ids too
    for model, run in cli_runs.items():
        assert run.tags["dagster/partition"] == model
        assert run.tags["eval/suite"] == "plotted" and run.tags["eval/model"] == model

    # the asset graph's Materialize button: Dagster's implicit asset job, no job tags
    suite = load_suite(path)
    resources = default_resources()
    definitions = build_definitions([suite], resources)
    job = definitions.resolve_implicit_global_asset_job_def()
    assert "eval/suite" not in job.tags
    result = job.execute_in_process(instance=instance, partition_key="blank", raise_on_error=False,
                                    asset_selection=[dg.AssetKey(["plotted", s])
                                                     for s in ("samples", "generations", "scores", "metrics")])
    assert result.success
    ui_tags = instance.get_run_by_id(result.run_id).tags
    for key in ("eval/suite", "eval/model", "dagster/partition"):
        assert ui_tags[key] == cli_runs["blank"].tags[key]


def test_a_run_is_tagged_from_its_first_stage_and_a_shard_names_its_model(eval_home: Path, tmp_path: Path) -> None:
    """A UI launch of the production stage alone (no metrics step) is found by its suite/model tags while it runs;
    in a sharded suite the model tag is the model, not the ``model|shard`` key."""
    path = precomputed_suite(tmp_path / "project")
    path.write_text(path.read_text() + "shards: 2\n")
    suite = load_suite(path)
    instance = local_instance()
    instance.add_dynamic_partitions("plotted_models", ["oracle"])
    job = build_definitions([suite], default_resources()).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, partition_key=dg.MultiPartitionKey({"model": "oracle", "shard": "1"}),
        raise_on_error=False, asset_selection=[dg.AssetKey(["plotted", s]) for s in ("samples", "generations")])
    assert result.success
    tags = instance.get_run_by_id(result.run_id).tags
    assert (tags["eval/suite"], tags["eval/model"]) == ("plotted", "oracle")
