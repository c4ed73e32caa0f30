"""Logging a base-vs-fine-tuned comparison to a real SQLite MLflow store, and its forest plot."""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval_pipeline.tracking import EvaluationRecord, log_comparison, log_evaluation
from eval_pipeline.tracking.comparison_log import comparison_metric_values
from eval_pipeline.tracking.plots import comparison_figure

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

SUITE = "qa-cmp"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = float("nan")
COLUMNS = ["suite", "metric", "model", "baseline", "n", "model_value", "baseline_value", "diff", "ci_low",
           "ci_high", "p_value", "p_holm", "test", "b", "c"]


def comparison_table() -> pd.DataFrame:
    """Two models × two metrics against one baseline; one CI is NaN; p_holm is Holm over each model's p."""
    rows = [
        (SUITE, "accuracy", "tuned", "base", 40, 0.8, 0.7, 0.1, 0.02, 0.18, 0.031, 0.062, "mcnemar", 6, 2),
        (SUITE, "pass@2", "tuned", "base", 40, 0.9, 0.85, 0.05, NAN, NAN, 0.4, 0.4, "paired_t", None, None),
        (SUITE, "accuracy", "tuned-v2", "base", 40, 0.65, 0.7, -0.05, -0.12, 0.02, 0.25, 0.25, "mcnemar", 1, 3),
        (SUITE, "win_rate", "tuned-v2", "base", 20, 0.6, 0.4, 0.2, 0.05, 0.35, 0.01, 0.02, "sign_test",
         None, None),
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def pairwise_table() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": ["s1", "s2"], "model": ["tuned-v2"] * 2, "baseline": ["base"] * 2, "sample_index": [0, 0],
        "model_first": ["A", "tie"], "baseline_first": ["B", "A"], "winner": ["model", "tie"],
        "consistent": [True, False], "judge_model": ["judge-1"] * 2, "judge_request_hashes": ['["h1","h2"]'] * 2,
        "error": [None, None],
    })


def evaluation_record(model: str) -> EvaluationRecord:
    metrics = pd.DataFrame([{"suite": SUITE, "model": model, "metric": "accuracy", "breakdown_key": None,
                             "breakdown_value": None, "value": 0.7, "stderr": 0.05, "ci_low": 0.6, "ci_high": 0.8,
                             "n": 40, "errors": 0, "k": None, "ci_method": "clopper_pearson"}])
    return EvaluationRecord(suite=SUITE, model=model, params={}, dataset_uri="/data/qa.jsonl", dataset_digest="abc",
                            samples=pd.DataFrame({"x": [1]}), items=pd.DataFrame({"x": [1]}), metrics=metrics)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("mlflow-cmp")
    return {"uri": f"sqlite:///{root}/mlflow.db", "root": str(root)}


@pytest.fixture(scope="module")
def logged(store: dict[str, str]) -> dict[str, str]:
    """A per-model run (the existing logger) and the comparison run in one store."""
    base = log_evaluation(evaluation_record("base"), tracking_uri=store["uri"])
    run_id = log_comparison(SUITE, comparison_table(), pairwise_table(), tracking_uri=store["uri"],
                            tags={"dagster_run_id": "dg-1", "team": "evals"})
    return {"base": base, "comparison": run_id}


def test_run_name_tags_and_experiment(store, logged):
    client = MlflowClient(store["uri"])
    run = client.get_run(logged["comparison"])
    assert run.info.run_name == f"{SUITE}/comparison"
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["eval.kind"] == "comparison"
    assert tags["eval.suite"] == SUITE
    assert tags["eval.baseline"] == "base"
    assert tags["team"] == "evals"
    assert tags["dagster.run_id"] == "dg-1"
    evaluation = client.get_run(logged["base"])
    assert run.info.experiment_id == evaluation.info.experiment_id
    assert client.get_experiment(run.info.experiment_id).name == f"eval/{SUITE}"
    assert run.info.artifact_uri.startswith((Path(store["root"]) / "artifacts").as_uri())


def test_metrics_match_table_and_skip_nan(store, logged):
    metrics = MlflowClient(store["uri"]).get_run(logged["comparison"]).data.metrics
    table = comparison_table()
    expected = {}
    for row in table.to_dict("records"):
        metric = row["metric"].replace("@", "_at_")
        for stat in ("diff", "ci_low", "ci_high", "p_value", "p_holm", "n"):
            if not math.isnan(row[stat]):
                expected[f"compare.{row['model']}.{metric}.{stat}"] = row[stat]
    assert metrics == pytest.approx(expected)
    assert "compare.tuned.pass_at_2.ci_low" not in metrics
    assert "compare.tuned.pass_at_2.ci_high" not in metrics
    assert metrics["compare.tuned.pass_at_2.diff"] == pytest.approx(0.05)
    assert metrics["compare.tuned-v2.accuracy.ci_low"] == pytest.approx(-0.12)
    assert metrics["compare.tuned.accuracy.n"] == 40
    assert metrics["compare.tuned.accuracy.p_holm"] == pytest.approx(0.062)


def test_per_model_run_names_its_interval_method(store, logged):
    tags = MlflowClient(store["uri"]).get_run(logged["base"]).data.tags
    assert tags["accuracy.ci_method"] == "clopper_pearson"


def test_artifacts_and_csv_round_trip(store, logged):
    client = MlflowClient(store["uri"])
    run_id = logged["comparison"]
    names = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert {"comparison.json", "comparison.csv", "pairwise.json", "comparison.png"} <= names
    folder = store["root"] + "/dl"
    csv = Path(client.download_artifacts(run_id, "comparison.csv", folder))
    pd.testing.assert_frame_equal(pd.read_csv(csv), comparison_table(), check_dtype=False)
    png = Path(client.download_artifacts(run_id, "comparison.png", folder))
    assert png.read_bytes()[:8] == PNG_MAGIC
    stored = json.loads(Path(client.download_artifacts(run_id, "pairwise.json", folder)).read_text())
    rows = [dict(zip(stored["columns"], row, strict=True)) for row in stored["data"]]
    assert [row["winner"] for row in rows] == ["model", "tie"]
    assert [row["consistent"] for row in rows] == [True, False]
    table = json.loads(Path(client.download_artifacts(run_id, "comparison.json", folder)).read_text())
    assert table["columns"] == COLUMNS and len(table["data"]) == 4


def test_no_pairwise_and_custom_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path}/other.db"
    run_id = log_comparison(SUITE, comparison_table().head(1), None, tracking_uri=uri, experiment_name="custom")
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "custom"
    names = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert "pairwise.json" not in names and "comparison.png" in names
    assert mlflow.active_run() is None and mlflow.get_tracking_uri() != uri


def test_empty_comparison_and_plot_failure(tmp_path, monkeypatch, caplog):
    """An empty table still gives a FINISHED run; a plot that fails to draw is logged, not raised."""
    import eval_pipeline.tracking.plots as plots

    def broken(_: pd.DataFrame):
        raise RuntimeError("boom")

    monkeypatch.setattr(plots, "comparison_figure", broken)
    uri = f"sqlite:///{tmp_path}/empty.db"
    with caplog.at_level(logging.WARNING, logger="eval_pipeline.tracking.comparison_log"):
        run_id = log_comparison(SUITE, pd.DataFrame(columns=COLUMNS), tracking_uri=uri)
    assert "could not draw the comparison plot" in caplog.text
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {}
    assert run.data.tags["eval.baseline"] == ""
    assert "comparison.png" not in {artifact.path for artifact in client.list_artifacts(run_id)}


def test_failure_marks_run_failed(tmp_path, monkeypatch):
    import eval_pipeline.tracking.comparison_log as comparison_log

    def broken(*_args, **_kwargs):
        raise RuntimeError("table store down")

    monkeypatch.setattr(comparison_log, "_log_tables", broken)
    uri = f"sqlite:///{tmp_path}/failed.db"
    with pytest.raises(RuntimeError, match="table store down"):
        log_comparison(SUITE, comparison_table(), tracking_uri=uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"eval/{SUITE}")
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.status for run in runs] == ["FAILED"]


def test_metric_names_with_several_baselines():
    table = pd.concat([comparison_table().head(1), comparison_table().head(1).assign(baseline="other")])
    values, skipped = comparison_metric_values(table)
    assert values["compare.tuned.vs.base.accuracy.diff"] == pytest.approx(0.1)
    assert "compare.tuned.vs.other.accuracy.p_value" in values
    assert skipped == []
    values, skipped = comparison_metric_values(comparison_table().assign(model="org/model:1"))
    assert "compare.org/model_1.accuracy.diff" in values
    assert set(skipped) == {"compare.org/model_1.pass_at_2.ci_low", "compare.org/model_1.pass_at_2.ci_high"}


def forty_rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for index in range(40):
        diff = float(rng.normal(0, 0.1))
        nan_ci = index % 7 == 0
        rows.append({"suite": SUITE, "metric": f"metric_{index % 10}_with_a_longer_name", "model": f"m{index // 10}",
                     "baseline": "base" if index % 2 else "base-2", "n": 100 + index, "model_value": 0.5 + diff,
                     "baseline_value": 0.5, "diff": NAN if index == 5 else diff,
                     "ci_low": NAN if nan_ci else diff - 0.05, "ci_high": NAN if nan_ci else diff + 0.05,
                     "p_value": None if index == 3 else float(rng.uniform()), "test": "paired_bootstrap",
                     "b": None, "c": None})
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.mark.parametrize("table", [pd.DataFrame(), pd.DataFrame(columns=COLUMNS), None])
def test_comparison_figure_empty(table):
    figure = comparison_figure(table)
    assert len(figure.axes) == 0
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == PNG_MAGIC


def test_comparison_figure_forty_rows():
    figure = comparison_figure(forty_rows())
    assert len(figure.axes) == 4  # one panel per model
    width, height = figure.get_size_inches()
    assert 8 <= width <= 12 and 8 <= height <= 25
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    assert buffer.getvalue()[:8] == PNG_MAGIC
    one_model = comparison_figure(forty_rows().assign(model="solo", baseline="base"))
    assert len(one_model.axes) == 1
    one_model.savefig(io.BytesIO(), format="png")


def test_forest_colours_come_from_the_procedure():
    """Green/red only where the CI excludes 0 and p < 0.05 (they agree in tables this release writes); a row of
    an older table whose bootstrap CI excluded 0 beside McNemar p = 0.25 is grey, not green."""
    from matplotlib.colors import to_hex

    from eval_pipeline.tracking.plots import comparison_direction

    assert comparison_direction(0.02, 0.18, 0.031) == 1
    assert comparison_direction(-0.3, -0.1, 0.001) == -1
    assert comparison_direction(0.125, 0.75, 0.25) == 0  # the reported contradiction
    assert comparison_direction(-0.1, 0.2, 0.5) == 0 and comparison_direction(NAN, NAN, 0.01) == 0
    table = pd.DataFrame([
        (SUITE, "better", "m", "base", 40, 0.8, 0.7, 0.1, 0.02, 0.18, 0.031, 0.031, "mcnemar", 6, 2),
        (SUITE, "legacy", "m", "base", 8, 0.6, 0.225, 0.375, 0.125, 0.75, 0.25, 0.25, "mcnemar", 3, 0),
        (SUITE, "worse", "m", "base", 40, 0.5, 0.7, -0.2, -0.3, -0.1, 0.001, 0.002, "paired_t", None, None),
    ], columns=COLUMNS)
    [axes] = comparison_figure(table).axes
    points = [c for c in axes.collections if c.get_offsets().shape[0] == 3][-1]
    assert [to_hex(color) for color in points.get_facecolors()] == ["#2ca02c", "#555555", "#d62728"]
    labels = [text.get_text() for text in axes.texts]
    assert "Holm p=0.002" in labels[2]


def test_comparison_cells_show_holm_beside_p():
    from eval_pipeline.assets.comparison import comparison_cells

    cells = comparison_cells(comparison_table())
    assert list(cells.columns[-2:]) == ["p", "p (Holm)"]
    assert list(cells["p (Holm)"]) == ["0.062", "0.4", "0.25", "0.02"]
