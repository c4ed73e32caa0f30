"""The Python SDK (``LLMAsJudgeEvaluator`` → ``EvaluationExecution``) end to end: the SageMaker notebook's flow on
a real Dagster instance and MLflow store, with the models and the judge behind a scripted fake Bedrock on 127.0.0.1
and the dataset (and outputs) on a moto S3 server."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline import paths
from eval_pipeline.judging import JudgeMetricError
from eval_pipeline.sdk import EvaluationExecution, LLMAsJudgeEvaluator, resolve_model
from eval_pipeline.sdk.models import distinct_names, partition_name
from eval_pipeline.suites.spec import NAME_PATTERN, ModelSpec
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes import FakeLLMServer

REPO = Path(__file__).resolve().parent.parent
MODEL_ID = "amazon.nova-micro-v1:0"
BASE_ID = "amazon.nova-lite-v1:0"
JUDGE_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
OTHER_JUDGE_ID = "amazon.nova-pro-v1:0"
QUESTIONS = ["What is the capital of France?", "What is 2 + 2?", "Name a primary colour.", "What do bees make?"]

from tests.notebook_metrics import custom_metric_dict  # noqa: E402

custom_metrics_json = json.dumps([custom_metric_dict])  # Note: wrap in list


class ScriptedBedrock:
    """The fake's answers: the models answer (the fine-tuned one cheerfully), the judges give scripted verdicts.

    Judge 1: Completeness "Mostly complete" (0.75), Faithfulness "Fully faithful" (1.0), PositiveSentiment "Good"
    (1.0) when the response is cheerful else "Poor" (0.0). Judge 2 rates every response "Complete" (1.0).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, prompt: str, model: str) -> str:
        with self._lock:
            self.calls[model] += 1
        if model == OTHER_JUDGE_ID:
            return "Covers everything.\nVerdict: Complete"
        if model == JUDGE_ID:
            if "sentiment of the response is positive" in prompt:
                return "Upbeat.\nVerdict: Good" if "Happy to help" in prompt else "Flat.\nVerdict: Poor"
            if "how fully the response covers" in prompt:
                return "Misses a detail.\nVerdict: Mostly complete"
            if "stays faithful" in prompt:
                return "Nothing invented.\nVerdict: Fully faithful"
            return "Unexpected metric.\nVerdict: ???"
        question = prompt.strip()
        return f"Happy to help! The answer to '{question}' is 42." if model == MODEL_ID else "42."


@pytest.fixture
def bedrock(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeLLMServer, ScriptedBedrock]]:
    script = ScriptedBedrock()
    with FakeLLMServer(answer=script, known_models={MODEL_ID, BASE_ID, JUDGE_ID, OTHER_JUDGE_ID}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        monkeypatch.delenv("EVAL_PIPELINE_DAGSTER_URL", raising=False)
        yield server, script


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    path = tmp_path / "gen_qa.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": q, "referenceResponse": "42"}) + "\n"
                            for i, q in enumerate(QUESTIONS)), encoding="utf-8")
    return str(path)


@pytest.fixture
def s3_dataset(aws_env: str, dataset: str) -> str:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="my-sagemaker-sherpa-dataset")
    s3.put_object(Bucket="my-sagemaker-sherpa-dataset", Key="dataset/gen_qa.jsonl", Body=Path(dataset).read_bytes())
    return "s3://my-sagemaker-sherpa-dataset/dataset/gen_qa.jsonl"


def _experiment_runs(name: str) -> list[Any]:
    client = MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"no MLflow experiment {name!r}"
    return client.search_runs([experiment.experiment_id])


# --- the notebook flow ------------------------------------------------------------------------------------------


def test_notebook_flow_end_to_end(eval_home: Path, bedrock: tuple[FakeLLMServer, ScriptedBedrock], s3_dataset: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    server, script = bedrock
    evaluator = LLMAsJudgeEvaluator(
        model=MODEL_ID,
        evaluator_model=JUDGE_ID,
        dataset=s3_dataset,
        builtin_metrics=["Completeness", "Faithfulness"],
        custom_metrics=custom_metrics_json,
        evaluate_base_model=False,
        name="notebook",
    )
    shown = repr(evaluator)
    assert shown.startswith("LLMAsJudgeEvaluator(") and f"bedrock:{MODEL_ID}" in shown and "PositiveSentiment" in shown
    assert server.requests_total == 0  # constructing sends nothing

    execution = evaluator.evaluate()
    assert re.fullmatch(r"llmaj-notebook-[0-9a-f]{8}", execution.name) and execution.arn.endswith(execution.name)
    assert execution.status.overall_status in ("Executing", "Succeeded")
    status = execution.wait(poll=0.2, timeout=180)
    assert status.overall_status == "Succeeded", status.failure_reason
    [step] = status.step_details
    assert (step.kind, step.status, step.model) == ("eval", "Succeeded", "amazon.nova-micro-v1-0")
    assert re.search(r"Succeeded: 1/1 steps done", capsys.readouterr().out)

    items = execution.show_results(limit=10, offset=0, show_explanations=False)
    printed = capsys.readouterr().out
    assert "What is the capital of France?" in printed and "PositiveSentiment" in printed
    assert list(items["sample_id"]) == ["q0", "q1", "q2", "q3"]
    assert (items["Completeness"] == 0.75).all() and (items["Faithfulness"] == 1.0).all()
    assert (items["PositiveSentiment"] == 1.0).all()
    assert items["response"].str.startswith("Happy to help!").all()
    summary = items.attrs["summary"].set_index("metric")
    assert summary.loc["Completeness", "mean"] == 0.75 and summary.loc["PositiveSentiment", "n"] == 4
    assert items.attrs["comparison"] is None
    page = execution.show_results(limit=2, offset=3, show_explanations=True)
    assert list(page["sample_id"]) == ["q3"] and page["Faithfulness explanation"].iloc[0] == "Nothing invented."

    # the Bedrock-shaped output, one line per item
    [jsonl] = execution.bedrock_outputs.values()
    assert jsonl == str(eval_home / "outputs" / "notebook" / "bedrock_output" / execution.id /
                        "amazon.nova-micro-v1-0_output.jsonl")
    records = [json.loads(line) for line in Path(jsonl).read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4
    scores = {s["metricName"]: s["result"] for s in records[0]["automatedEvaluationResult"]["scores"]}
    assert scores == {"Builtin.Completeness": 0.75, "Builtin.Faithfulness": 1.0, "PositiveSentiment": 1.0}
    assert records[0]["modelResponses"][0]["modelIdentifier"] == MODEL_ID
    assert records[0]["inputRecord"]["prompt"] == QUESTIONS[0]

    # MLflow: the model's run in the evaluator's experiment
    [run] = _experiment_runs("eval/notebook")
    assert re.fullmatch(r"amazon\.nova-micro-v1-0 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \([0-9a-f]{8}\)", run.info.run_name)
    assert run.data.metrics["Completeness"] == pytest.approx(0.75)
    assert run.data.tags["dagster.run_id"] == step.dagster_run_id

    # requests: 4 generations, 4 × 3 judgments
    assert script.calls == Counter({MODEL_ID: 4, JUDGE_ID: 12})

    # found again: by id, by ARN, in get_all, and from another process
    again = EvaluationExecution.get(execution.id)
    assert again.status.overall_status == "Succeeded" and again.record["config"]["metrics"] == [
        "Completeness", "Faithfulness", "PositiveSentiment"]
    assert EvaluationExecution.get(arn=execution.arn, region="us-west-2").id == execution.id
    assert [e.id for e in LLMAsJudgeEvaluator.get_all(region="us-west-2")] == [execution.id]
    code = ("import sys; from eval_pipeline.sdk import EvaluationExecution as E; e = E.get(sys.argv[1]); "
            "print(e.status.overall_status, len(e.results().items))")
    other = subprocess.run([sys.executable, "-c", code, execution.id], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "EVAL_PIPELINE_HOME": str(eval_home)}, timeout=120)
    assert other.stdout.split() == ["Succeeded", "4"], other.stderr[-3000:]


def test_base_vs_fine_tuned_in_one_experiment(eval_home: Path, bedrock: tuple[FakeLLMServer, ScriptedBedrock],
                                              dataset: str, aws_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3").create_bucket(Bucket="eval-out")
    execution = LLMAsJudgeEvaluator(
        model=MODEL_ID, base_model=BASE_ID, evaluate_base_model=True, evaluator_model=JUDGE_ID, dataset=dataset,
        custom_metrics=str(REPO / "examples" / "metrics" / "positive_sentiment.json"), name="finetune",
        s3_output_path="s3://eval-out/eval/").evaluate()
    status = execution.wait(poll=0.2, timeout=180)
    assert status.overall_status == "Succeeded", status.failure_reason
    assert [(s.name, s.status) for s in status.step_details] == [
        ("evaluate/amazon.nova-micro-v1-0", "Succeeded"), ("evaluate/amazon.nova-lite-v1-0", "Succeeded"),
        ("compare/amazon.nova-lite-v1-0", "Succeeded")]

    items = execution.show_results()
    printed = capsys.readouterr().out
    assert "Comparison with the base model" in printed
    by_model = items.groupby("model")["PositiveSentiment"].mean()
    assert by_model.to_dict() == {"amazon.nova-micro-v1-0": 1.0, "amazon.nova-lite-v1-0": 0.0}
    [row] = items.attrs["comparison"].to_dict("records")
    assert (row["model"], row["baseline"], row["metric"], row["diff"]) == (
        "amazon.nova-micro-v1-0", "amazon.nova-lite-v1-0", "PositiveSentiment", 1.0)
    assert row["p_value"] < 0.2 and row["n"] == 4

    runs = [r.info.run_name for r in _experiment_runs("eval/finetune")]  # the model and when: all distinct
    assert len(set(runs)) == 3 and {name.split(" ")[0] for name in runs} >= {"amazon.nova-micro-v1-0",
                                                                             "amazon.nova-lite-v1-0"}
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="eval-out")["Contents"]}
    assert "eval/finetune/judgments/amazon.nova-micro-v1-0.parquet" in keys
    assert f"eval/finetune/bedrock_output/{execution.id}/amazon.nova-lite-v1-0_output.jsonl" in keys


def test_changing_only_the_judge_reuses_every_generation(eval_home: Path, dataset: str,
                                                         bedrock: tuple[FakeLLMServer, ScriptedBedrock],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, script = bedrock
    settings = {"model": MODEL_ID, "dataset": dataset, "builtin_metrics": ["Builtin.Completeness"], "limit": 3}
    first = LLMAsJudgeEvaluator(evaluator_model=JUDGE_ID, **settings).evaluate()
    assert first.wait(poll=0.2, timeout=180).overall_status == "Succeeded"
    assert script.calls == Counter({MODEL_ID: 3, JUDGE_ID: 3})

    second = LLMAsJudgeEvaluator(evaluator_model=OTHER_JUDGE_ID, **settings).evaluate()
    assert second.wait(poll=0.2, timeout=180).overall_status == "Succeeded"
    assert script.calls == Counter({MODEL_ID: 3, JUDGE_ID: 3, OTHER_JUDGE_ID: 3})  # no new generation request
    assert (second.results().items["Completeness"] == 1.0).all()
    assert (first.results().items["Completeness"] == 0.75).all()  # an ended execution keeps its own tables
    assert [e.id for e in LLMAsJudgeEvaluator.get_all()] == [second.id, first.id]

    second.show_results(limit=1, use_rich=False)  # the plain-text rendering (no rich)
    printed = capsys.readouterr().out
    assert f"{second.id} (Succeeded): items 1-1 of 3" in printed
    assert "[q0] amazon.nova-micro-v1-0" in printed and "Completeness: 1.000" in printed


# --- bad input, before any inference ----------------------------------------------------------------------------


def _custom(name: str = "Tone", instructions: str = "Rate {{prediction}} for {{prompt}}",
            scale: list | None = None) -> dict[str, Any]:
    levels = [{"definition": "Good", "value": {"floatValue": 1}}] if scale is None else scale
    return {"customMetricDefinition": {"name": name, "instructions": instructions, "ratingScale": levels}}


@pytest.mark.parametrize(("metrics", "message"), [
    ({"custom_metrics": [_custom(name="Bad Name!")]}, "metric name 'Bad Name!' is invalid"),
    ({"custom_metrics": json.dumps([_custom(instructions="Rate the response.")])}, "use no placeholder"),
    ({"custom_metrics": [_custom(scale=[])]}, "ratingScale must be a non-empty list"),
    ({"custom_metrics": [_custom(name=f"M{i}") for i in range(11)]}, "11 custom metrics given; the limit is 10"),
    ({"builtin_metrics": ["Completness"]}, "unknown builtin judge metric 'Completness'. Did you mean 'Completeness'"),
    ({}, "no judge metrics"),
])
def test_bad_metrics_fail_at_construction(eval_home: Path, bedrock: tuple[FakeLLMServer, ScriptedBedrock],
                                          dataset: str, metrics: dict[str, Any], message: str) -> None:
    server, _ = bedrock
    with pytest.raises(JudgeMetricError, match=re.escape(message)):
        LLMAsJudgeEvaluator(model=MODEL_ID, evaluator_model=JUDGE_ID, dataset=dataset, **metrics)
    assert server.requests_total == 0
    assert not list(paths.sdk_suites_dir().iterdir()) and not (eval_home / "executions").exists()


@pytest.mark.parametrize(("arguments", "message"), [
    ({"model": "llama-textgeneration-7b"}, "cannot resolve model 'llama-textgeneration-7b'"),
    ({"model": "./no/such/checkpoint"}, "(no such directory)"),
    ({"evaluator_model": "gpt-4o"}, "evaluator_model: cannot resolve model 'gpt-4o'"),
    ({"base_model": "sagemaker:"}, "does not name a SageMaker endpoint"),
    ({"evaluate_base_model": True}, "evaluate_base_model=True needs base_model="),
    ({"dataset": "/no/such/file.jsonl"}, "no such file or folder"),
    ({"dataset": "arn:aws:sagemaker:us-west-2:1:model-package/x/1"}, "not an AI Registry dataset ARN"),
    ({"name": "bad-name"}, "suite"),
    ({"name": "quickstart"}, "already a suite"),
    ({"pairwise": True}, "judge.pairwise needs a 'baseline'"),
    ({"max_tokens": 0}, "generation.max_tokens"),
])
def test_bad_arguments_fail_at_construction(eval_home: Path, bedrock: tuple[FakeLLMServer, ScriptedBedrock],
                                            dataset: str, arguments: dict[str, Any], message: str) -> None:
    server, _ = bedrock
    settings = {"model": MODEL_ID, "evaluator_model": JUDGE_ID, "dataset": dataset, "builtin_metrics": ["Coherence"]}
    with pytest.raises(ValueError, match=re.escape(message)):
        LLMAsJudgeEvaluator(**{**settings, **arguments})
    assert server.requests_total == 0


# --- stop ---------------------------------------------------------------------------------------------------------


def test_stop_a_slow_run(eval_home: Path, bedrock: tuple[FakeLLMServer, ScriptedBedrock], dataset: str) -> None:
    server, script = bedrock
    server.latency_s = 0.5
    execution = LLMAsJudgeEvaluator(model=MODEL_ID, base_model=BASE_ID, evaluator_model=JUDGE_ID, dataset=dataset,
                                    builtin_metrics=["Completeness"], name="slow").evaluate()
    deadline = time.monotonic() + 60
    while execution.status.step_details[0].status != "Executing":
        assert time.monotonic() < deadline, execution.status
        time.sleep(0.05)
    with pytest.raises(TimeoutError, match="still Executing"):
        execution.wait(poll=0.05, timeout=0.2)
    status = execution.stop()
    assert status.overall_status in ("Stopping", "Stopped")
    assert status.step_details[0].status in ("Stopping", "Succeeded")  # reported as canceling; it runs to its end
    final = execution.wait(poll=0.2, timeout=120)
    assert final.overall_status == "Stopped"
    assert final.step_details[0].status == "Succeeded"  # an in-process run cannot be interrupted: it finished
    assert [s.status for s in final.step_details[1:]] == ["Pending", "Pending"]  # the base run never started
    assert script.calls[BASE_ID] == 0
    assert EvaluationExecution.get(execution.id).status.overall_status == "Stopped"


# --- failures ----------------------------------------------------------------------------------------------------


def test_a_failed_run_fails_the_execution(eval_home: Path, bedrock: tuple[FakeLLMServer, ScriptedBedrock],
                                          dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDK_TEST_MISSING_KEY", raising=False)
    model = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "served",
             "api_key_env": "SDK_TEST_MISSING_KEY"}
    execution = LLMAsJudgeEvaluator(model=model, evaluator_model=JUDGE_ID, dataset=dataset,
                                    builtin_metrics=["Coherence"], name="failing").evaluate()
    status = execution.wait(poll=0.2, timeout=120)
    assert status.overall_status == "Failed"
    assert status.step_details[0].status == "Failed" and "SDK_TEST_MISSING_KEY" in status.failure_reason
    assert execution.bedrock_outputs == {}


def test_an_execution_whose_process_died_is_failed(eval_home: Path, dataset: str, tmp_path: Path,
                                                   bedrock: tuple[FakeLLMServer, ScriptedBedrock]) -> None:
    server, _ = bedrock
    server.latency_s = 1.0
    code = ("import os, sys, time\n"
            "from eval_pipeline.sdk import LLMAsJudgeEvaluator\n"
            "e = LLMAsJudgeEvaluator(model=sys.argv[1], evaluator_model=sys.argv[2], dataset=sys.argv[3],\n"
            "                        builtin_metrics=['Coherence'], name='orphan').evaluate()\n"
            "while e.status.step_details[0].status != 'Executing':\n"
            "    time.sleep(0.05)\n"
            "print(e.id, flush=True)\n"
            "os._exit(0)  # gone without a word, its run still STARTED\n")
    # Read the id line and wait for the process itself, not for the end of its output: a process that Dagster's
    # log capture started (a ``tee``) may hold the inherited stdout open for a while after the parent is gone.
    errors = tmp_path / "orphan.stderr"
    with errors.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", code, MODEL_ID, JUDGE_ID, dataset], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
        assert proc.stdout is not None
        execution_id = proc.stdout.readline().strip()
        assert proc.wait(timeout=180) == 0, errors.read_text()[-3000:]
        proc.stdout.close()
    status = EvaluationExecution.get(execution_id).status
    assert status.overall_status == "Failed" and "is gone" in status.failure_reason
    assert status.step_details[0].status == "Failed"  # its run is marked failed too


# --- the embedded judge -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_judge(eval_home: Path, tiny_model_dir: str, embedded_model_dir: str, dataset: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    """The default judge (SmolLM2-135M, weak) gives likelihood verdicts: a rating on every item, no error rows."""
    evaluator = LLMAsJudgeEvaluator(model=tiny_model_dir, dataset=dataset, limit=2, max_tokens=8, judge_max_tokens=96,
                                    builtin_metrics=["Completeness"], custom_metrics=custom_metrics_json)
    assert evaluator.config()["judge_verdict"] == "likelihood"
    assert evaluator.evaluator_model.backend == "local" and evaluator.evaluator_model.model == "smollm2-135m-instruct"
    status = evaluator.evaluate().wait(poll=0.5, timeout=600)
    assert status.overall_status == "Succeeded", status.failure_reason
    execution = next(iter(LLMAsJudgeEvaluator.get_all()))
    items = execution.show_results(show_explanations=True)
    assert len(items) == 2 and {"Completeness", "PositiveSentiment"} <= set(items.columns)
    for metric in ("Completeness", "PositiveSentiment"):
        assert items[metric].notna().all() and items[metric].between(0, 1).all()
    assert isinstance(items.attrs["judge_warnings"], pd.DataFrame)
    assert "Metrics" in capsys.readouterr().out


# --- model arguments and the code location ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "backend", "name"), [
    ("anthropic.claude-3-5-haiku-20241022-v1:0", "bedrock", "anthropic.claude-3-5-haiku-20241022-v1-0"),
    ("amazon.nova-pro-v1:0", "bedrock", "amazon.nova-pro-v1-0"),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1-0"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0", "bedrock",
     "us.amazon.nova-pro-v1-0"),
    ("sagemaker:my-endpoint-1", "sagemaker", "my-endpoint-1"),
    ("smollm2-135m-instruct", "local", "smollm2-135m-instruct"),
])
def test_model_strings(value: str, backend: str, name: str) -> None:
    spec = resolve_model(value)
    assert (spec.backend, spec.name) == (backend, name)
    assert (spec.endpoint if backend == "sagemaker" else spec.model) == value.removeprefix("sagemaker:")


def test_model_directories_dicts_specs_and_names(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints" / "step 1000"
    folder.mkdir(parents=True)
    spec = resolve_model(str(folder))
    assert (spec.backend, spec.model, spec.name) == ("local", str(folder), "step-1000")
    served = resolve_model({"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "org/my-model"})
    assert served.name == "org-my-model"
    given = ModelSpec(name="mine", backend="bedrock", model=MODEL_ID)
    assert resolve_model(given) is given
    with pytest.raises(ValueError, match="a bedrock model needs 'model'"):
        resolve_model({"backend": "bedrock"})
    long = partition_name("x" * 100)
    assert len(long) == 63 and re.match(NAME_PATTERN, long) and long != partition_name("x" * 101)
    assert partition_name("--/--") == "model"
    model, base = distinct_names(resolve_model(MODEL_ID), resolve_model(MODEL_ID))
    assert (model.name, base.name) == ("amazon.nova-micro-v1-0-model", "amazon.nova-micro-v1-0-base")


def test_code_location_loads_sdk_suites(eval_home: Path, dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from eval_pipeline.sdk.suite_files import write_suite

    evaluator = LLMAsJudgeEvaluator(model=MODEL_ID, evaluator_model=JUDGE_ID, dataset=dataset,
                                    custom_metrics=custom_metrics_json, name="from_sdk")
    write_suite(evaluator.suite, "test")
    (paths.sdk_suites_dir() / "broken.yaml").write_text("suite: broken\nmodels: []\n")
    (paths.sdk_suites_dir() / "clash.yaml").write_text((paths.sdk_suites_dir() / "from_sdk.yaml").read_text()
                                                       .replace("suite: from_sdk", "suite: quickstart"))
    monkeypatch.chdir(REPO)
    import eval_pipeline.definitions as definitions

    jobs = {job.name for job in importlib.reload(definitions).defs.resolve_all_job_defs()}
    assert {"quickstart_eval", "from_sdk_eval"} <= jobs and "broken_eval" not in jobs
    keys = {key.to_user_string() for key in definitions.defs.resolve_asset_graph().get_all_asset_keys()}
    assert "from_sdk/judgments" in keys and "quickstart/judgments" not in keys  # the clash did not replace it
