"""Release gates through the real pipeline: scripted models (the precomputed backend answering from files) against a
pinned baseline, the blocking ``release_gate`` check in a real Dagster instance, the CLI's exit code and reason, and
the ``promotion`` asset acting on a real MLflow registry (SQLite store in the test's state folder, versions created
here) and a SageMaker model package in moto (UpdateModelPackage is implemented there) — only for the model that
passed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import boto3
import dagster as dg
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats

from eval_pipeline.assets.promote import build_promotion_asset
from eval_pipeline.cli import main
from eval_pipeline.instance import local_instance
from eval_pipeline.metrics.release_gates import MetricRule, release_gate
from eval_pipeline.suite_definitions import default_resources
from eval_pipeline.suites.loading import load_suite
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes.llm_server import FakeLLMServer, fake_tokens, prompt_logprob

ITEMS = 60
BASELINE_RIGHT = set(range(0, 40))                    # the baseline answers 40 of 60
GOOD_RIGHT = set(range(0, 41))                        # the same, and one more
BAD_RIGHT = set(range(0, 20))                         # 20 of the baseline's right answers lost: −1/3


def write_project(folder: Path, package_arns: dict[str, str]) -> Path:
    data = folder / "data"
    data.mkdir(parents=True)
    (data / "qa.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?",
                                                        "referenceResponse": str(i + 1)}) + "\n"
                                           for i in range(ITEMS)))
    for name, right in (("base", BASELINE_RIGHT), ("good", GOOD_RIGHT), ("bad", BAD_RIGHT)):
        (data / f"{name}.jsonl").write_text("".join(
            json.dumps({"sample_id": f"q{i}", "response": str(i + 1) if i in right else "no idea"}) + "\n"
            for i in range(ITEMS)))
    suite = folder / "evals" / "released.yaml"
    suite.parent.mkdir()
    suite.write_text(f"""\
suite: released
dataset: {{uri: data/qa.jsonl}}
models:
  - {{name: good, backend: precomputed, responses: data/good.jsonl}}
  - {{name: bad, backend: precomputed, responses: data/bad.jsonl}}
  - {{name: base, backend: precomputed, responses: data/base.jsonl}}
scorers: [exact_match, contains]
gates:
  baseline: base
  alpha: 0.05
  metrics:
    exact_match: {{max_regression: 0.02}}
    contains: {{max_regression: 0.05}}
promote:
  mlflow_alias: champion
  mlflow_tags: {{release: passed}}
  sagemaker_approve: true
  region: us-east-1
  targets:
    good: [models:/qa-model/1, {package_arns['good']}]
    bad: [models:/qa-model/2, {package_arns['bad']}]
""")
    return suite


def pending_packages() -> dict[str, str]:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model_package_group(ModelPackageGroupName="qa-models")
    arns = {}
    for name in ("good", "bad"):
        arns[name] = sagemaker.create_model_package(
            ModelPackageGroupName="qa-models", ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "123.dkr.ecr.us-east-1.amazonaws.com/vllm:1",
                                                    "ModelDataUrl": f"s3://models/{name}/model.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]
    return arns


def registered_versions(client: MlflowClient) -> None:
    """Two versions of ``qa-model`` (1 for good, 2 for bad), each from a run of its own."""
    client.create_registered_model("qa-model")
    experiment = client.create_experiment("training")
    for _ in range(2):
        run = client.create_run(experiment)
        client.create_model_version("qa-model", f"runs:/{run.info.run_id}/model", run.info.run_id)


def approval(arn: str) -> str:
    return boto3.client("sagemaker", region_name="us-east-1").describe_model_package(
        ModelPackageName=arn)["ModelApprovalStatus"]


@pytest.mark.slow
def test_the_passing_model_is_promoted_and_the_regressing_one_fails_the_cli(
        eval_home: Path, tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", aws_env)
    arns = pending_packages()
    suite = write_project(tmp_path / "p", arns)
    registry = MlflowClient(tracking_uri=default_tracking_uri(), registry_uri=default_tracking_uri())
    registered_versions(registry)

    # before the baseline is evaluated, no candidate passes (and nothing is promoted)
    assert main(["run", str(suite), "--model", "good"]) == 1
    out, _ = capsys.readouterr()
    assert "release_gate failed for good: the baseline 'base' has not been evaluated yet" in out
    assert registry.get_registered_model("qa-model").aliases == {}
    assert approval(arns["good"]) == "PendingManualApproval"

    # the passing candidate (the baseline named after it: run_suite evaluates the baseline first)
    assert main(["run", str(suite), "--model", "good", "--model", "base", "--json"]) == 0
    passed = json.loads(capsys.readouterr().out)
    gates = {(g["check"], g["model"]): g for g in passed["gates"]}
    base = gates[("release_gate", "base")]
    assert base["passed"] and "baseline" in base["detail"]["note"]
    good = gates[("release_gate", "good")]
    assert good["passed"] and good["observed"] == 0.0
    exact = good["detail"]["metrics"]["exact_match"]
    assert (exact["n"], exact["test"], exact["diff"]) == (ITEMS, "mcnemar", pytest.approx(1 / ITEMS))
    assert exact["mde"] is not None and exact["mde"] > 0
    base_run = passed["outputs"]["base"]["dagster_run_id"]
    good_run = passed["outputs"]["good"]["dagster_run_id"]
    instance = local_instance()
    assert instance.get_run_by_id(good_run).status == dg.DagsterRunStatus.SUCCESS
    assert instance.get_run_by_id(base_run).status == dg.DagsterRunStatus.SUCCESS
    assert list(passed["outputs"]) == ["base", "good"]  # the baseline first, though named last
    assert (instance.get_run_record_by_id(base_run).create_timestamp
            < instance.get_run_record_by_id(good_run).create_timestamp)

    # promoted: alias and tag on version 1, package Approved; the evaluation run says so
    assert str(registry.get_model_version_by_alias("qa-model", "champion").version) == "1"
    assert registry.get_model_version("qa-model", "1").tags == {"release": "passed"}
    assert approval(arns["good"]) == "Approved"
    evaluation = MlflowClient(default_tracking_uri()).get_run(passed["outputs"]["good"]["mlflow_run_id"])
    assert evaluation.data.tags["gate.release_gate"] == "passed"
    assert evaluation.info.status == "FINISHED" and "gate.failed" not in evaluation.data.tags
    promoted = json.loads(evaluation.data.tags["eval.promotion"])
    assert {p["target"] for p in promoted} == {"models:/qa-model/1", arns["good"]}
    promotion = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(["released", "promotion"]), asset_partitions=["good"]), limit=1).records
    assert promotion and promotion[0].asset_materialization.metadata["promoted"].value is True

    # the regressing candidate: exit 1, the reason printed, its MLflow run FAILED, nothing promoted
    assert main(["run", str(suite), "--model", "bad"]) == 1
    out, err = capsys.readouterr()
    [run_line] = [line for line in out.splitlines() if line.startswith("MLflow run: ")]
    regressed = MlflowClient(default_tracking_uri()).get_run(run_line.removeprefix("MLflow run: "))
    assert regressed.info.status == "FAILED"  # a failed gate fails the run everywhere it is reported
    assert regressed.data.tags["gate.failed"] == "release_gate"  # as a failed error-rate gate is recorded
    assert regressed.data.tags["gate.release_gate"].startswith("exact_match: regression -0.3333")
    assert "FAILED: gate release_gate failed for bad" in out
    assert "exact_match: regression -0.3333" in out and "significantly beyond the allowed -0.0200" in out
    assert "contains: regression -0.3333" in out
    assert "bad: FAILED" in err
    assert str(registry.get_model_version_by_alias("qa-model", "champion").version) == "1"  # not moved
    assert registry.get_model_version("qa-model", "2").tags == {}
    assert approval(arns["bad"]) == "PendingManualApproval"
    assert not instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(["released", "promotion"]), asset_partitions=["bad"]), limit=1).records
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["released", "metrics"]), "release_gate")])
    assert check  # recorded in the instance

    # the promotion launched on its own (as from the UI) evaluates the gate again and refuses
    alone = dg.materialize([build_promotion_asset(load_suite(suite))], partition_key="bad", instance=instance,
                           resources=default_resources(), raise_on_error=False)
    assert not alone.success
    [failure] = alone.get_step_failure_events()
    assert "not promoted: release_gate failed for bad: exact_match: regression" in \
        failure.step_failure_data.error.message
    assert approval(arns["bad"]) == "PendingManualApproval" and registry.get_model_version("qa-model", "2").tags == {}


def test_the_gate_verdicts_of_the_scripted_models() -> None:
    """The same scripted scores, straight through the library: the verdict the pipeline reports."""
    import pandas as pd

    def scores(right: set[int]) -> pd.DataFrame:
        return pd.DataFrame({"sample_id": [f"q{i}" for i in range(ITEMS)], "scorer": "exact_match",
                             "score": [float(i in right) for i in range(ITEMS)], "error": None})

    rules = [MetricRule("exact_match", "max_regression", 0.02)]
    assert release_gate("good", "base", scores(GOOD_RIGHT), scores(BASELINE_RIGHT), rules).passed
    bad = release_gate("bad", "base", scores(BAD_RIGHT), scores(BASELINE_RIGHT), rules)
    assert not bad.passed and bad.reason.startswith("exact_match: regression -0.3333")


@pytest.mark.slow
def test_a_sharded_suite_is_gated_on_all_shards_of_both_models(eval_home: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The gate reads every shard of the model and of the baseline (``read_model_stage``): the same n and verdict
    as one shard."""
    from eval_pipeline.suites.spec import Suite

    if "shards" not in Suite.model_fields:
        pytest.skip("suites are not split into shards in this tree")
    suite = write_project(tmp_path / "p", {"good": "arn:aws:sagemaker:us-east-1:1:model-package/a/1",
                                           "bad": "arn:aws:sagemaker:us-east-1:1:model-package/a/2"})
    text = suite.read_text()
    suite.write_text(text[:text.index("promote:")].replace("suite: released\n", "suite: released\nshards: 2\n"))
    assert main(["run", str(suite), "--model", "bad", "--model", "base", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    [gate] = [g for g in payload["gates"] if g["check"] == "release_gate" and g["model"] == "bad"]
    exact = gate["detail"]["metrics"]["exact_match"]
    assert not gate["passed"] and exact["n"] == ITEMS and exact["unpaired"] == 0
    assert exact["diff"] == pytest.approx(-20 / ITEMS)
    assert "release_gate failed for bad" in payload["errors"]["bad"]


MC_ITEMS = 40
WORDS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]


def fake_pick(served: str, question: str, choices: list[str]) -> int:
    """The choice the fake server's numbers make most likely (``acc``, ties first), from its own log-probabilities:
    the tokens at or after the end of the question (the context is the question and a space)."""
    def logprob(choice: str) -> float:
        prompt, start = f"{question} {choice}", len(question)
        return math.fsum(prompt_logprob(served, prompt[:o], t) for o, t in fake_tokens(prompt) if o >= start)

    values = [logprob(choice) for choice in choices]
    return values.index(max(values))


@pytest.mark.slow
def test_a_multiple_choice_suite_is_gated_on_acc_end_to_end(eval_home: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A multiple_choice suite on a scripted log-likelihood server (the fake's OpenAI completions route): the
    answers are what the baseline's served model picks, so the baseline scores acc = 1; ``twin`` is the same served
    model (passes, run FINISHED), ``cand`` another (agrees on some items only: a regression, its run FAILED)."""
    questions = [(f"Item {i}: the colour word is", [WORDS[(i + k) % len(WORDS)] for k in range(4)])
                 for i in range(MC_ITEMS)]
    answers = [fake_pick("base-served", q, c) for q, c in questions]
    agree = sum(fake_pick("cand-served", q, c) == a for (q, c), a in zip(questions, answers, strict=True))
    assert 0 < agree < MC_ITEMS - 10  # the scripted numbers give a clear regression
    folder = tmp_path / "mc"
    (folder / "evals").mkdir(parents=True)
    (folder / "data").mkdir()
    rows = [{"id": f"q{i}", "question": q, "choices": c, "answer": a}
            for i, ((q, c), a) in enumerate(zip(questions, answers, strict=True))]
    (folder / "data" / "mc.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with FakeLLMServer(retry_after_s=0.01) as fake:
        suite = folder / "evals" / "mc.yaml"
        served = f"backend: openai, base_url: '{fake.url}/v1'"
        suite.write_text(f"""\
suite: mc_gated
task: multiple_choice
dataset: {{uri: data/mc.jsonl}}
models:
  - {{name: twin, {served}, model: base-served}}
  - {{name: cand, {served}, model: cand-served}}
  - {{name: base, {served}, model: base-served}}
gates: {{baseline: base, metrics: {{acc: {{max_regression: 0.0}}}}}}
""")
        assert main(["run", str(suite), "--model", "twin", "--model", "cand", "--model", "base", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    acc = {m["model"]: m["value"] for m in payload["metrics"] if m["metric"] == "acc" and not m["breakdown"]}
    assert acc == {"base": 1.0, "twin": 1.0, "cand": pytest.approx(agree / MC_ITEMS)}
    gates = {g["model"]: g for g in payload["gates"] if g["check"] == "release_gate"}
    cand = gates["cand"]["detail"]["metrics"]["acc"]
    regressed = MC_ITEMS - agree  # the discordant pairs, all against the candidate
    assert (cand["n"], cand["test"], cand["unpaired"]) == (MC_ITEMS, "mcnemar", 0)
    assert cand["diff"] == pytest.approx(-regressed / MC_ITEMS)
    assert cand["p_gate"] == pytest.approx(stats.binomtest(0, regressed, 0.5, alternative="less").pvalue)
    assert not gates["cand"]["passed"] and gates["cand"]["reason"].startswith("acc: regression")
    assert gates["twin"]["passed"] and gates["twin"]["detail"]["metrics"]["acc"]["diff"] == 0.0
    assert "release_gate failed for cand" in payload["errors"]["cand"] and "twin" not in payload["errors"]
    client = MlflowClient(default_tracking_uri())
    failed, passed = (client.get_run(payload["outputs"][m]["mlflow_run_id"]) for m in ("cand", "twin"))
    assert failed.info.status == "FAILED" and failed.data.tags["gate.failed"] == "release_gate"
    assert passed.info.status == "FINISHED" and passed.data.tags["gate.release_gate"] == "passed"
