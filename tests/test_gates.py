"""Release gates gate: a failed ``error_rate`` check fails the run everywhere it is reported (exit code, ``--json``,
the plain output, the Dagster run, the MLflow run status, the SDK status); an empty dataset is refused before
anything is sent. Real Dagster instance, Parquet and MLflow store; the precomputed backend and a scripted fake
Bedrock stand in for the models."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.cli import main
from eval_pipeline.instance import local_instance
from eval_pipeline.metrics.gates import error_rate_gate
from eval_pipeline.sdk import LLMAsJudgeEvaluator
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes import FakeLLMServer
from tests.test_sdk import JUDGE_ID, MODEL_ID

QUESTIONS = [("q0", "What is 2 + 2?", "4"), ("q1", "Capital of France?", "Paris"), ("q2", "Colour of grass?", "green"),
             ("q3", "Bees make?", "honey"), ("q4", "Opposite of up?", "down")]


def project(folder: Path, *, answered: int, max_error_rate: float, rows: int = len(QUESTIONS)) -> Path:
    """A suite over ``rows`` questions whose precomputed responses cover only the first ``answered`` of them."""
    data = folder / "data"
    data.mkdir(parents=True)
    (data / "qa.jsonl").write_text("".join(json.dumps({"id": i, "prompt": q, "referenceResponse": a}) + "\n"
                                           for i, q, a in QUESTIONS[:rows]))
    (data / "responses.jsonl").write_text("".join(json.dumps({"sample_id": i, "response": a}) + "\n"
                                                  for i, _, a in QUESTIONS[:answered]))
    suite = folder / "evals" / "gated.yaml"
    suite.parent.mkdir()
    suite.write_text(f"""\
suite: gated
dataset: {{uri: data/qa.jsonl}}
models:
  - {{name: oracle, backend: precomputed, responses: data/responses.jsonl}}
scorers: [exact_match, contains]
max_error_rate: {max_error_rate}
""")
    return suite


def mlflow_run(run_id: str):
    return MlflowClient(default_tracking_uri()).get_run(run_id)


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_a_failed_gate_fails_the_cli_run(eval_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = project(tmp_path / "p", answered=3, max_error_rate=0.0)  # 2 of 5 responses missing: 40% error rows
    assert main(["run", str(suite), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["success"] is False
    assert "error_rate" in payload["errors"]["oracle"] and "4 of 10" in payload["errors"]["oracle"]
    [gate] = payload["gates"]
    assert (gate["check"], gate["model"], gate["passed"]) == ("error_rate", "oracle", False)
    assert gate["observed"] == pytest.approx(2 / 5) and gate["allowed"] == 0.0
    assert gate["detail"]["generation_errors"] == 2 and gate["detail"]["generations"] == 5
    overall = {m["metric"]: m for m in payload["metrics"] if not m["breakdown"]}
    assert overall["exact_match"]["value"] == pytest.approx(1.0) and overall["exact_match"]["n"] == 3
    assert overall["exact_match"]["errors"] == 2  # the metrics are still there, beside the failed gate

    run = mlflow_run(payload["outputs"]["oracle"]["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["gate.failed"] == "error_rate" and "4 of 10" in run.data.tags["gate.error_rate"]

    instance = local_instance()
    dagster_run = instance.get_run_by_id(payload["outputs"]["oracle"]["dagster_run_id"])
    assert dagster_run.status == dg.DagsterRunStatus.FAILURE
    evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["gated", "metrics"]), "error_rate")])
    assert evaluation  # the check's evaluation is recorded in the instance

    assert main(["run", str(suite)]) == 1
    captured = capsys.readouterr()
    assert "FAILED: gate error_rate failed for oracle" in captured.out and "exact_match" in captured.out
    assert "gated / oracle: FAILED: gate error_rate" in captured.err


def test_a_gate_within_its_limit_passes_and_a_metric_without_items_fails(
        eval_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = project(tmp_path / "p", answered=4, max_error_rate=0.2)  # 1 of 5 missing: exactly the limit
    assert main(["run", str(suite), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["success"] is True and payload["errors"] == {}
    [gate] = payload["gates"]
    assert gate["passed"] is True and gate["observed"] == pytest.approx(1 / 5) and gate["allowed"] == 0.2
    run = mlflow_run(payload["outputs"]["oracle"]["mlflow_run_id"])
    assert run.info.status == "FINISHED" and "gate.failed" not in run.data.tags

    suite = project(tmp_path / "q", answered=0, max_error_rate=1.0)  # every generation failed, errors allowed
    assert main(["run", str(suite), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["success"] is False
    [gate] = payload["gates"]
    assert gate["passed"] is False and "n = 0" in gate["reason"] and "exact_match" in gate["reason"]
    assert gate["observed"] == 1.0 and gate["detail"]["unmeasured_metrics"] == ["contains", "exact_match"]
    assert mlflow_run(payload["outputs"]["oracle"]["mlflow_run_id"]).info.status == "FAILED"


def test_an_empty_dataset_is_refused_before_anything_is_sent(eval_home: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    suite = project(tmp_path / "p", answered=0, max_error_rate=0.0, rows=0)
    dataset = tmp_path / "p" / "data" / "qa.jsonl"
    dataset.write_text("\ufeff\n  \n")  # a byte-order mark and blank lines: no item
    for argv in (["run", str(suite)], ["run", str(suite), "--json"], ["run", str(suite), "--dry-run"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and f"error: {dataset}:" in captured.err and "no items" in captured.err
    assert local_instance().get_runs() == []  # told at load: no Dagster run at all

    # a folder (or glob, or s3://) is read by the samples step: the run stops there, before any request
    folder = tmp_path / "p" / "empty"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text("\n")
    suite.write_text(suite.read_text().replace("data/qa.jsonl", "empty"))
    assert main(["run", str(suite), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"error: {folder}:" in captured.err and "no items" in captured.err
    instance = local_instance()
    [run] = instance.get_runs()
    failed = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    assert run.status == dg.DagsterRunStatus.FAILURE and [e.dagster_event.step_key for e in failed] == [
        "gated__samples"]
    assert not instance.get_materialized_partitions(dg.AssetKey(["gated", "generations"]))


# --- what the error rate counts ---------------------------------------------------------------------------------


def test_the_error_rate_counts_every_stage_per_model() -> None:
    """Generation, scoring and judgment errors of this model, and nothing of another model's."""
    def rows(model: str, n: int, failed: set[int], **extra: object) -> pd.DataFrame:
        return pd.DataFrame([{"sample_id": f"s{i}", "model": model, "sample_index": 0,
                              "error": "boom" if i in failed else None, **extra} for i in range(n)])

    generations = pd.concat([rows("m", 6, {0, 1}), rows("other", 6, {0, 1, 2, 3, 4, 5})])
    scores = pd.concat([rows("m", 6, {0, 1}, scorer="exact_match"), rows("m", 6, {0, 1, 2}, scorer="f1"),
                        rows("other", 6, set(range(6)), scorer="exact_match")])
    judgments = pd.concat([rows("m", 6, {0, 1, 4, 5}, metric="Correctness"), rows("other", 6, set(range(6)))])
    metrics = pd.DataFrame([{"model": "m", "metric": "f1", "breakdown_key": None, "n": 3},
                            {"model": "m", "metric": "f1", "breakdown_key": "category", "n": 0}])
    gate = error_rate_gate("m", generations, scores, judgments, metrics, max_error_rate=0.4)
    # by hand: 18 rows of m (6 exact_match, 6 f1, 6 Correctness); errored: 2 + 3 + 4 = 9
    assert gate.observed == pytest.approx(9 / 18) and not gate.passed
    assert gate.detail | {"unmeasured_metrics": []} == {
        "rows": 18, "errors": 9, "generations": 6, "generation_errors": 2, "scoring_errors": 1,
        "judgment_errors": 2, "unmeasured_metrics": [], "stage": "generations"}
    assert "9 of 18" in gate.reason and "0.500 > allowed 0.400" in gate.reason
    assert error_rate_gate("m", generations, scores, judgments, metrics, max_error_rate=0.5).passed
    # a failed generation that left no row downstream (no scorer, no judge) still counts
    lone = error_rate_gate("m", generations, scores.iloc[0:0], None, metrics.iloc[0:0], max_error_rate=0.0)
    assert lone.observed == 1.0 and lone.detail["rows"] == 2 and not lone.passed
    nothing = error_rate_gate("m", generations.iloc[0:0], scores.iloc[0:0], None, metrics.iloc[0:0], 1.0)
    assert not nothing.passed and nothing.observed is None and "nothing was scored" in nothing.reason


# --- the SDK ----------------------------------------------------------------------------------------------------


def test_an_sdk_execution_with_many_judgment_errors_fails(eval_home: Path, aws_env: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """3 items × 3 judge metrics; the judge states a verdict for 2 of the 9 judgments only."""
    def answer(prompt: str, model: str) -> str:
        if model == JUDGE_ID:
            if "how fully the response covers" in prompt and "Capital" in prompt:
                return "Covers it.\nVerdict: Mostly complete"
            if "stays faithful" in prompt and "Capital" in prompt:
                return "Faithful.\nVerdict: Fully faithful"
            return "I would rather not say."
        return "Paris."

    dataset = tmp_path / "qa.jsonl"
    dataset.write_text("".join(json.dumps({"id": i, "prompt": q, "referenceResponse": a}) + "\n"
                               for i, q, a in QUESTIONS[:3]))
    with FakeLLMServer(answer=answer, known_models={MODEL_ID, JUDGE_ID}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        monkeypatch.delenv("EVAL_PIPELINE_DAGSTER_URL", raising=False)
        evaluator = LLMAsJudgeEvaluator(model=MODEL_ID, evaluator_model=JUDGE_ID, dataset=str(dataset),
                                        builtin_metrics=["Completeness", "Faithfulness", "Coherence"], name="gated")
        execution = evaluator.evaluate()
        status = execution.wait(poll=0.2, timeout=120)
    assert status.overall_status == "Failed"
    [step] = status.step_details
    assert step.status == "Failed" and step.failure_reason is not None
    assert "error_rate" in status.failure_reason and "7 of 9" in status.failure_reason
    [gate] = step.gates
    assert gate.observed == pytest.approx(7 / 9) and gate.allowed == 0.0 and not gate.passed
    mlflow_runs = execution.record["mlflow_runs"]
    assert mlflow_run(next(iter(mlflow_runs.values()))).info.status == "FAILED"
