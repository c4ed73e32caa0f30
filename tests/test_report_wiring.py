"""The suite report wired into the pipeline (issue 13, item 1): ``eval-pipeline run`` on a precomputed two-model
suite with a baseline writes ``<outputs>/<suite>/report.html`` and says where (plain and ``--json``); each model's
metrics step and the comparison step add the report to their MLflow run as ``report.html`` and link it from their
materialization (``report``). A report that cannot be written is a warning: the evaluation still succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.cli import main
from eval_pipeline.instance import local_instance
from eval_pipeline.tracking import default_tracking_uri

SUITE = "wired"
N = 8


def write_project(folder: Path) -> Path:
    """Two precomputed models over N items: ``good`` right on 6, ``base`` (the baseline) right on 4."""
    data = folder / "data"
    data.mkdir(parents=True)
    (data / "qa.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?", "referenceResponse": str(i + 1)}) + "\n"
        for i in range(N)))
    for name, right in (("good", 6), ("base", 4)):
        (data / f"{name}.jsonl").write_text("".join(
            json.dumps({"sample_id": f"q{i}", "response": str(i + 1) if i < right else "no idea"}) + "\n"
            for i in range(N)))
    suite = folder / "evals" / f"{SUITE}.yaml"
    suite.parent.mkdir()
    suite.write_text(f"""\
suite: {SUITE}
dataset: {{uri: data/qa.jsonl}}
models:
  - {{name: base, backend: precomputed, responses: data/base.jsonl}}
  - {{name: good, backend: precomputed, responses: data/good.jsonl}}
baseline: base
scorers: [exact_match]
""")
    return suite


def latest(stage: str, partition: str | None = None) -> tuple[dg.AssetMaterialization, str]:
    """The stage's latest materialization (a model's partition) and the Dagster run that made it."""
    records = local_instance().fetch_materializations(dg.AssetKey([SUITE, stage]), limit=20).records
    found = [r for r in records if r.asset_materialization.partition == partition]
    assert found, (stage, partition)
    return found[0].asset_materialization, found[0].run_id


def run_warnings(run_id: str) -> list[str]:
    return [entry.user_message for entry in local_instance().all_logs(run_id)
            if entry.level == 30 and "report" in entry.user_message]  # logging.WARNING


def test_run_writes_logs_and_links_the_report(eval_home: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_project(tmp_path / "project")
    assert main(["run", str(suite), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    report = Path(result["report"])
    assert report == eval_home / "outputs" / SUITE / "report.html"
    assert report.is_file() and report.read_text(encoding="utf-8").lower().startswith("<!doctype html")

    # each model's metrics materialization and the comparison's link the file
    client = MlflowClient(default_tracking_uri())
    for model in ("base", "good"):
        materialization, _ = latest("metrics", model)
        assert isinstance(materialization.metadata["report"], dg.PathMetadataValue)
        assert Path(materialization.metadata["report"].value) == report
    comparison, _ = latest("comparison")
    assert Path(comparison.metadata["report"].value) == report

    # the MLflow runs (each model's and the comparison's) hold the report as report.html
    runs = {model: result["outputs"][model]["mlflow_run_id"] for model in ("base", "good")}
    runs["comparison"] = comparison.metadata["mlflow_run_id"].value
    assert all(runs.values()) and len(set(runs.values())) == 3
    for name, run_id in runs.items():
        assert "report.html" in [a.path for a in client.list_artifacts(run_id)], name
        downloaded = Path(client.download_artifacts(run_id, "report.html", str(tmp_path / name)))
        page = downloaded.read_text(encoding="utf-8")
        assert page.lower().startswith("<!doctype html") and SUITE in page
    assert not run_warnings(result["outputs"]["good"]["dagster_run_id"])


@pytest.mark.slow
def test_a_report_that_cannot_be_written_does_not_fail_the_evaluation(
        eval_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_project(tmp_path / "project")
    report = eval_home / "outputs" / SUITE / "report.html"
    report.mkdir(parents=True)  # a folder where the page should go: writing it fails
    assert main(["run", str(suite), "--model", "good"]) == 0
    out = capsys.readouterr().out
    assert "report:" not in out and "exact_match" in out
    materialization, dagster_run = latest("metrics", "good")
    assert "report" not in materialization.metadata and materialization.metadata["mlflow_run_id"].value
    warnings = run_warnings(dagster_run)
    assert len(warnings) == 1 and f"the report of {SUITE} was not written" in warnings[0]
    run_id = materialization.metadata["mlflow_run_id"].value
    assert "report.html" not in [a.path for a in MlflowClient(default_tracking_uri()).list_artifacts(run_id)]

    # the way cleared, the next run writes it and says where, on its last line
    report.rmdir()
    assert main(["run", str(suite), "--model", "good"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == f"report: {report}" and report.is_file()


@pytest.mark.slow
def test_a_report_on_s3_is_linked_by_its_url_and_logged_from_a_download(
        eval_home: Path, tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket="team-outputs")
    monkeypatch.setenv("EVAL_PIPELINE_OUTPUTS", "s3://team-outputs/evals")
    suite = write_project(tmp_path / "project")
    assert main(["run", str(suite), "--model", "good", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["report"] == f"s3://team-outputs/evals/{SUITE}/report.html"
    stored = boto3.client("s3").get_object(Bucket="team-outputs", Key=f"evals/{SUITE}/report.html")["Body"].read()
    materialization, _ = latest("metrics", "good")
    assert isinstance(materialization.metadata["report"], dg.UrlMetadataValue)
    assert materialization.metadata["report"].value == result["report"]
    run_id = result["outputs"]["good"]["mlflow_run_id"]
    logged = Path(MlflowClient(default_tracking_uri()).download_artifacts(run_id, "report.html", str(tmp_path)))
    for page in (logged.read_text(encoding="utf-8"), stored.decode("utf-8")):  # the step's page; the run's rewrite
        assert page.lower().startswith("<!doctype html") and SUITE in page
