"""The whole chain on a real Dagster instance, real Parquet and a real MLflow store, with the tiny local model."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.cli import main
from eval_pipeline.data.schemas import GENERATIONS, METRICS, SAMPLES, SCORES
from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from eval_pipeline.tracking import default_tracking_uri

REPO = Path(__file__).resolve().parent.parent


def make_suite(folder: Path, model_dir: str, extra: str = "") -> Path:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "data" / "gen_qa.jsonl", data / "qa.jsonl")
    rows = [json.loads(line) for line in (data / "qa.jsonl").read_text().splitlines()]
    (data / "oracle.jsonl").write_text("".join(
        json.dumps({"sample_id": r["id"], "response": r["referenceResponse"] if i % 4 else "no idea"}) + "\n"
        for i, r in enumerate(rows)))
    path = folder / "evals" / "tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""\
suite: tiny
dataset: {{uri: data/qa.jsonl}}
models:
  - {{name: tiny-lm, backend: local, model: {model_dir}, batch_size: 4}}
  - {{name: oracle, backend: precomputed, responses: data/oracle.jsonl}}
generation: {{max_tokens: 8, temperature: 0.0}}
scorers: [exact_match, f1, rouge_l, contains]
breakdown_keys: [category]
{extra}""")
    return path


@pytest.fixture
def suite_file(tmp_path: Path, tiny_model_dir: str) -> Path:
    return make_suite(tmp_path / "project", tiny_model_dir)


def test_run_suite_materializes_every_stage_and_logs_to_mlflow(eval_home: Path, suite_file: Path) -> None:
    suite = load_suite(suite_file)
    result = run_suite(suite, local_instance(), limit=12)
    assert result.success, [m.error for m in result.models]
    tiny, oracle = result.models

    outputs = eval_home / "outputs" / "tiny"
    assert pq.read_schema(outputs / "samples.parquet").names == SAMPLES.names
    for stage, schema in [("generations", GENERATIONS), ("scores", SCORES), ("metrics", METRICS)]:
        for model in ("tiny-lm", "oracle"):
            assert pq.read_schema(outputs / stage / f"{model}.parquet").names == schema.names

    generations = pd.read_parquet(outputs / "generations" / "tiny-lm.parquet")
    assert len(generations) == 12 and generations["error"].isna().all()
    assert (generations["tokens_out"] <= 8).all() and tiny.generation["generated"] == 12

    metrics = oracle.metrics.set_index(["metric", "breakdown_key"], drop=False)
    overall = oracle.metrics[oracle.metrics["breakdown_key"].isna()].set_index("metric")
    assert overall.loc["exact_match", "value"] == pytest.approx(9 / 12)  # every 4th answer is wrong
    assert overall.loc["exact_match", "n"] == 12 and overall.loc["exact_match", "errors"] == 0
    assert set(metrics["breakdown_value"].dropna()) == set(pd.read_parquet(outputs / "samples.parquet")["category"])

    client = MlflowClient(default_tracking_uri())
    run = client.get_run(oracle.mlflow_run_id)
    assert run.data.tags["dagster.run_id"] == oracle.dagster_run_id
    assert run.data.params["model.backend"] == "precomputed" and run.data.params["generation.max_tokens"] == "8"
    assert run.data.metrics["exact_match"] == pytest.approx(0.75)
    assert run.data.metrics["exact_match.ci_low"] == pytest.approx(overall.loc["exact_match", "ci_low"])
    dataset = run.inputs.dataset_inputs[0].dataset
    assert dataset.name == "tiny" and "qa.jsonl" in dataset.source
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"items.json", "metrics_by_breakdown.svg"} <= artifacts
    items = json.loads(Path(client.download_artifacts(run.info.run_id, "items.json")).read_text())
    assert len(items["data"]) == 12
    experiment = client.get_experiment(run.info.experiment_id)
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags["model"] for r in runs} == {"tiny-lm", "oracle"}  # one experiment per suite


def test_second_run_generates_nothing(eval_home: Path, suite_file: Path) -> None:
    suite = load_suite(suite_file)
    first = run_suite(suite, local_instance(), models=["tiny-lm"], limit=6)
    second = run_suite(suite, local_instance(), models=["tiny-lm"], limit=6)
    assert first.models[0].generation["generated"] == 6
    assert second.models[0].generation["generated"] == 0 and second.models[0].generation["cached"] == 6
    pd.testing.assert_frame_equal(first.metrics, second.metrics)
    instance = local_instance()
    materializations = instance.fetch_materializations(dg.AssetKey(["tiny", "generations"]), limit=10).records
    assert len(materializations) == 2 and {r.partition_key for r in materializations} == {"tiny-lm"}
    messages = [entry.user_message for entry in instance.all_logs(first.models[0].dagster_run_id)]
    finals = [m for m in messages if m.startswith("tiny/tiny-lm generation: done 6/6 in ")]
    assert len(finals) == 1 and finals[0].endswith(" req/s")  # progress in the Dagster run log, with its rate
    assert any("6 requests: 0 from cache, 6 generated" in m for m in messages)


def test_cli_json_and_table(eval_home: Path, suite_file: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(suite_file.parent))
    assert main(["run", str(suite_file), "--model", "oracle", "--limit", "8", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["suite"] == "tiny" and payload["success"] is True
    first = payload["metrics"][0]
    assert set(first) == {"model", "metric", "value", "stderr", "ci_low", "ci_high", "ci_method", "n", "errors",
                          "breakdown"}
    assert first["ci_method"] == "clopper_pearson"  # exact_match is 0/1
    overall = {m["metric"]: m for m in payload["metrics"] if not m["breakdown"]}
    assert overall["exact_match"]["value"] == pytest.approx(6 / 8) and overall["exact_match"]["n"] == 8
    assert any(m["breakdown"].get("category") for m in payload["metrics"])
    assert Path(payload["outputs"]["oracle"]["metrics"]).is_file()

    assert main(["run", str(suite_file), "--model", "tiny-lm", "--limit", "3"]) == 0
    assert main(["run", str(suite_file), "--model", "tiny-lm", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 generated" in out and "nothing generated: all cached" in out and "95% CI" in out

    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "tiny:" in listing and "tiny_eval" in listing and "SUCCESS" in listing


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text.replace("data/qa.jsonl", "data/missing.jsonl"), "missing.jsonl: dataset file not found"),
    (lambda text: text.replace("backend: precomputed", "backend: psychic"), "unknown backend 'psychic'"),
    (lambda text: text.replace("scorers:", "scorer:"), "unknown key 'scorer' (did you mean 'scorers'?)"),
    (lambda text: text.replace("[exact_match,", "[exact_matsh,"), "unknown scorer 'exact_matsh'"),
])
def test_cli_bad_input_is_a_clear_error(eval_home: Path, suite_file: Path, capsys: pytest.CaptureFixture[str],
                                        edit, message: str) -> None:
    suite_file.write_text(edit(suite_file.read_text()))
    code = main(["run", str(suite_file), "--model", "oracle"])
    err = capsys.readouterr().err
    assert code != 0 and message in err, err


def test_cli_unknown_model_and_missing_suite(eval_home: Path, suite_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(suite_file), "--model", "nobody"]) == 2
    assert "has no model 'nobody'" in capsys.readouterr().err
    assert main(["run", "no-such-suite.yaml"]) == 2
    assert "suite file not found" in capsys.readouterr().err


def test_cli_dry_run_sends_nothing(eval_home: Path, suite_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(suite_file), "--dry-run", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing sent" in out and "est. tokens in" in out and "no price" in out
    assert main(["run", str(suite_file), "--model", "oracle", "--dry-run", "--json"]) == 0
    [plan] = json.loads(capsys.readouterr().out)["plans"]
    assert plan["model"] == "oracle" and plan["requests"] == 40 and plan["to_send"] == 0  # read from its file
    assert plan["note"].startswith("answers read from") and plan["judge"] is None
    assert not (eval_home / "outputs" / "tiny").exists()  # no stage ran
