"""MLflow logging against a real SQLite store in a temporary folder (migrated once per module)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.tracking import (
    EvaluationRecord,
    flatten_params,
    log_evaluation,
    metric_values,
    sanitize_name,
)
from eval_pipeline.tracking.metrics_plot import metrics_svg

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

SUITE = "qa-mini"
DIGEST = "d1g3st0123456789"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tracking URI and artifact location shared by the module's tests."""
    root = tmp_path_factory.mktemp("mlflow")
    return {"uri": f"sqlite:///{root}/mlflow.db", "artifacts": (root / "artifacts").as_uri(),
            "root": str(root)}


def metrics_table(model: str, accuracy: float = 0.75) -> pd.DataFrame:
    rows = [
        ("accuracy", None, None, accuracy, 0.1, 0.55, 0.95, 4, 0, 1),
        ("accuracy", "category", "math", 1.0, 0.0, 1.0, 1.0, 2, 0, 1),
        ("accuracy", "category", "geo/history", 0.5, 0.5, 0.0, 1.0, 2, 0, 1),
        ("pass@2", None, None, 0.9, 0.05, 0.8, 1.0, 4, 1, 2),
        ("judge_score", None, None, float("nan"), float("nan"), float("nan"), float("nan"), 0, 4, 1),
    ]
    columns = ["metric", "breakdown_key", "breakdown_value", "value", "stderr", "ci_low", "ci_high", "n",
               "errors", "k"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(0, "model", model)
    frame.insert(0, "suite", SUITE)
    return frame


def samples_table() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": ["s1", "s2", "s3", "s4"],
        "input": ["1+1?", "2+2?", "Capital of France?", "Year of Waterloo?"],
        "input_kind": ["text"] * 4,
        "reference": ["2", "4", "Paris", "1815"],
        "choices": [None] * 4,
        "category": ["math", "math", "geo/history", "geo/history"],
        "metadata": ["{}"] * 4,
        "line": [1, 2, 3, 4],
    })


def items_table() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": ["s1", "s2", "s3", "s4"],
        "sample_index": [0, 0, 0, 0],
        "input": ["1+1?", "2+2?", "Capital of France?", "Year of Waterloo?"],
        "reference": ["2", "4", "Paris", "1815"],
        "output": ["2", "4", None, "1815"],
        "error": [None, None, "timeout", None],
        "exact_match": [1.0, 1.0, float("nan"), 1.0],
        "extra": [{"a": 1}, ["x"], None, 3],  # mixed objects: logged as text
    })


def make_record(model: str, **overrides) -> EvaluationRecord:
    fields = {
        "suite": SUITE,
        "model": model,
        "params": {"model": model, "generation": {"temperature": 0.0, "max_tokens": 64, "stop": ["\n"]},
                   "judge": {"model": "judge-1", "rubric": {"scale": 5}}, "long": "x" * 7000},
        "dataset_uri": "/data/qa-mini.jsonl",
        "dataset_digest": DIGEST,
        "samples": samples_table(),
        "items": items_table(),
        "metrics": metrics_table(model),
        "tags": {"dagster_run_id": f"dagster-run-{model}"},
    }
    fields.update(overrides)
    return EvaluationRecord(**fields)


@pytest.fixture(scope="module")
def logged(store: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two models of one suite logged into the module's store."""
    extra = tmp_path_factory.mktemp("extra") / "report.txt"
    extra.write_text("hello")
    run_a = log_evaluation(make_record("base", extra_artifacts={"reports/summary.txt": extra}),
                           tracking_uri=store["uri"], artifact_location=store["artifacts"])
    run_b = log_evaluation(make_record("tuned"), tracking_uri=store["uri"],
                           artifact_location=store["artifacts"])
    return {"base": run_a, "tuned": run_b}


def test_run_name_tags_and_params(store, logged):
    run = MlflowClient(store["uri"]).get_run(logged["base"])
    assert re.fullmatch(r"base \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(dagster-\)", run.info.run_name)  # model, when, run
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster.run_id"] == "dagster-run-base"
    assert run.data.tags["suite"] == SUITE
    assert run.data.tags["model"] == "base"
    params = run.data.params
    assert params["model"] == "base"
    assert params["generation.temperature"] == "0.0"
    assert params["generation.max_tokens"] == "64"
    assert json.loads(params["generation.stop"]) == ["\n"]
    assert params["judge.model"] == "judge-1"
    assert params["judge.rubric.scale"] == "5"
    assert len(params["long"]) == 6000


def test_metrics_match_table(store, logged):
    metrics = MlflowClient(store["uri"]).get_run(logged["base"]).data.metrics
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["accuracy.stderr"] == pytest.approx(0.1)
    assert metrics["accuracy.ci_low"] == pytest.approx(0.55)
    assert metrics["accuracy.ci_high"] == pytest.approx(0.95)
    assert metrics["accuracy.n"] == 4
    assert metrics["accuracy.errors"] == 0
    assert metrics["accuracy.category.math"] == pytest.approx(1.0)
    assert metrics["accuracy.category.geo/history"] == pytest.approx(0.5)
    assert metrics["pass_at_2"] == pytest.approx(0.9)
    assert metrics["pass_at_2.errors"] == 1
    # NaN values are skipped; their finite companions are kept
    assert "judge_score" not in metrics
    assert "judge_score.stderr" not in metrics
    assert metrics["judge_score.errors"] == 4
    assert not any(math.isnan(value) for value in metrics.values())


def test_dataset_input(store, logged):
    inputs = MlflowClient(store["uri"]).get_run(logged["base"]).inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.name == SUITE
    assert dataset.digest == DIGEST
    assert json.loads(dataset.source)["uri"] == "/data/qa-mini.jsonl"
    assert json.loads(dataset.profile)["num_rows"] == 4
    assert {tag.key: tag.value for tag in inputs[0].tags}["mlflow.data.context"] == "evaluation"


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """``mlflow.load_table`` (and ``MlflowClient.load_table``) search runs through the global URI."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def test_items_and_metrics_tables(store, logged):
    client = MlflowClient(store["uri"])
    experiment_id = client.get_run(logged["base"]).info.experiment_id
    with tracking_uri(store["uri"]):
        items = client.load_table(experiment_id, "items.json", run_ids=[logged["base"]])
        metrics = client.load_table(experiment_id, "metrics.json", run_ids=[logged["base"]])
    expected = items_table()
    assert list(items["sample_id"]) == list(expected["sample_id"])
    assert list(items["sample_index"]) == [0, 0, 0, 0]
    assert items["error"].tolist()[2] == "timeout"
    assert items["exact_match"].tolist()[:2] == [1.0, 1.0] and pd.isna(items["exact_match"][2])
    assert len(metrics) == len(metrics_table("base"))
    # load_table's pd.read_json re-infers dtypes ("2" reads back as 2.0); the stored JSON keeps the text
    raw = Path(client.download_artifacts(logged["base"], "items.json", store["root"] + "/dl"))
    stored = json.loads(raw.read_text())
    rows = [dict(zip(stored["columns"], row, strict=True)) for row in stored["data"]]
    assert [row["output"] for row in rows] == ["2", "4", None, "1815"]
    assert json.loads(rows[0]["extra"]) == {"a": 1} and rows[2]["extra"] is None and rows[3]["extra"] == "3"
    csv = Path(client.download_artifacts(logged["base"], "metrics.csv", store["root"] + "/dl"))
    assert pd.read_csv(csv)["metric"].tolist() == metrics_table("base")["metric"].tolist()


def test_plot_and_extra_artifacts(store, logged):
    client = MlflowClient(store["uri"])
    names = {artifact.path for artifact in client.list_artifacts(logged["base"])}
    assert {"items.json", "metrics.json", "metrics.csv", "metrics_by_breakdown.svg", "reports"} <= names
    svg = Path(client.download_artifacts(logged["base"], "metrics_by_breakdown.svg", store["root"] + "/dl"))
    assert svg.read_text() == metrics_svg(metrics_table("base"))  # this run's rows, drawn as the library draws them
    report = Path(client.download_artifacts(logged["base"], "reports/summary.txt", store["root"] + "/dl"))
    assert report.read_text() == "hello"
    assert client.get_run(logged["base"]).info.artifact_uri.startswith(store["artifacts"])


def test_two_models_share_one_experiment(store, logged):
    client = MlflowClient(store["uri"])
    experiment = client.get_experiment_by_name(f"eval/{SUITE}")
    runs = client.search_runs([experiment.experiment_id])
    assert {run.info.run_id for run in runs} == set(logged.values())
    assert sorted(run.info.run_name.split(" ")[0] for run in runs) == ["base", "tuned"]


def test_no_global_mlflow_state_left(store, logged):
    assert mlflow.get_tracking_uri() != store["uri"]
    assert mlflow.active_run() is None


def test_nan_skipped_with_warning_and_other_uri(tmp_path, caplog):
    """A second store in the same process; NaN overall values are skipped and counted in a warning."""
    uri = f"sqlite:///{tmp_path}/other.db"
    metrics = metrics_table("solo", accuracy=float("nan"))
    record = make_record("solo", metrics=metrics, dataset_digest=None, dataset_uri="hf://datasets/x/y",
                         samples=pd.DataFrame(), items=pd.DataFrame(), params={})
    with caplog.at_level(logging.WARNING, logger="eval_pipeline.tracking.mlflow_log"):
        run_id = log_evaluation(record, tracking_uri=uri, experiment_name="custom")
    assert "skipped 5 NaN metric value(s)" in caplog.text
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert "accuracy" not in run.data.metrics
    assert run.data.metrics["accuracy.category.math"] == 1.0
    assert client.get_experiment(run.info.experiment_id).name == "custom"
    assert run.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())
    dataset = run.inputs.dataset_inputs[0].dataset
    assert json.loads(dataset.source) == {"uri": "hf://datasets/x/y"}
    assert dataset.digest  # computed by MLflow


def test_metric_values_and_names():
    values, skipped = metric_values(metrics_table("m"))
    assert values["accuracy.category.geo/history"] == 0.5
    assert set(skipped) == {"judge_score", "judge_score.stderr", "judge_score.ci_low", "judge_score.ci_high"}
    assert sanitize_name("a:b/../c//d@1") == "a_b/_/c/d_at_1"
    assert sanitize_name("") == "_"
    assert flatten_params({"a": {"b": {"c": 1}}, "d": None}) == {"a.b.c": "1", "d": "None"}


def test_concurrent_first_use_of_a_fresh_store(tmp_path: Path) -> None:
    """Several processes logging to a brand-new SQLite store at once (a backfill's runs) all succeed."""
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    script = (
        "import sys, pandas as pd\n"
        "from eval_pipeline.tracking import EvaluationRecord, log_evaluation\n"
        "metrics = pd.DataFrame([{'suite': 's', 'model': sys.argv[2], 'metric': 'acc', 'breakdown_key': None,"
        " 'breakdown_value': None, 'value': 0.5, 'stderr': 0.1, 'ci_low': 0.3, 'ci_high': 0.7, 'n': 4,"
        " 'errors': 0, 'k': None}])\n"
        "record = EvaluationRecord(suite='s', model=sys.argv[2], params={}, dataset_uri='/tmp/d.jsonl',"
        " dataset_digest='abc', samples=pd.DataFrame({'x': [1]}), items=pd.DataFrame({'x': [1]}), metrics=metrics)\n"
        "print(log_evaluation(record, tracking_uri=sys.argv[1]))\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", script, uri, f"m{i}"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
                 for i in range(3)]
    outcomes = [p.communicate(timeout=240) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-1500:] for _, err in outcomes]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("eval/s")
    assert len(client.search_runs([experiment.experiment_id])) == 3
