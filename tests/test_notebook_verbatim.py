"""The SageMaker LLM-as-judge notebook (seed 002), its code cells pasted as they are, run against the AWS doubles.

Only the import lines change (``sagemaker.train.evaluate`` → ``eval_pipeline.sdk``). The values a user fills in are
filled in as a user would: the redacted account ids (``<>``, ``<account-id>``), ``<your-bucket>``, the package name,
and the "replace with your actual pipeline execution ARN" cells get this run's execution ARN. Without the
``sagemaker-mlflow`` plugin (which MLflow needs to reach a SageMaker tracking server by ARN) ``MLFLOW_ARN`` is set
to a tracking URI (the state folder's store) in the configuration cells; with it (the ``dev`` and ``sagemaker``
extras) the ARNs stay as written and the plugin sends the runs, SigV4-signed, to ``$SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT``:
a gateway that checks the signatures in front of a real ``mlflow server`` (``tests/fakes/sagemaker_mlflow.py``).

The models: Part 1's model package (us-west-2) and Part 2's (us-east-1) are served on temporary SageMaker endpoints
(moto's control plane; the fake data plane checks each endpoint is InService while it answers); Part 2's Nova model
and the package's base model go to the us-east-1 Nova lite inference profile on the fake Bedrock. Cells are run one
by one as in a notebook; after a cell that starts an evaluation the test waits for it to end before the next one
(a person reads the output), so ``wait(poll=30)`` returns at its first look.
"""
# ruff: noqa: E501 - the notebook's cells are pasted as they are, long lines included

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.judging.builtin import builtin_metric
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes import FakeLLMServer
from tests.fakes.judge import blocks
from tests.fakes.sagemaker_control import SageMakerControlPlane
from tests.fakes.sagemaker_mlflow import SageMakerMlflowGateway, mlflow_server
from tests.sagemaker_doubles import ACCOUNT, EndpointWitness, create_model_package, sagemaker_resources

NOVA_PROFILE = "us.amazon.nova-lite-v1:0"
NOVA_ANSWER = "Nova here: a short, friendly answer."
VERDICTS = {"Completeness": "Mostly complete", "Faithfulness": "Fully faithful", "Correctness": "Partially correct",
            "Helpfulness": "Helpful"}
PART1_QUESTIONS = ["What is the capital of France?", "What is 2 + 2?"]
PART2_PROMPTS = ["What is machine learning?", "How does a neural network work?"]
IMPORT = "from sagemaker.train.evaluate import"
PLUGIN = importlib.util.find_spec("sagemaker_mlflow") is not None
PART1_MLFLOW_ARN = f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:mlflow-tracking-server/mmlu-eval-experiment"
PART2_MLFLOW_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:mlflow-tracking-server/llmaj-server"

# --- the notebook's code cells, as pasted ----------------------------------------------------------------------
CELLS_PART1 = [
    '''# Configuration
REGION = 'us-west-2'
S3_BUCKET = 's3://mufi-test-serverless-smtj/eval/'
# DATASET = 'arn:aws:sagemaker:us-west-2:<>:hub-content/AIRegistry/DataSet/gen-qa-test-content/1.0.1'  # Dataset ARN or S3 URI
DATASET = "s3://my-sagemaker-sherpa-dataset/dataset/gen-qa-formatted-dataset/gen_qa.jsonl"
MLFLOW_ARN = 'arn:aws:sagemaker:us-west-2:<>:mlflow-tracking-server/mmlu-eval-experiment'
''',
    '''import json
from sagemaker.train.evaluate import LLMAsJudgeEvaluator
from rich.pretty import pprint

# Configure logging to show INFO messages
import logging
logging.basicConfig(
    level=logging.INFO,
    format='%(levelname)s - %(name)s - %(message)s'
)
''',
    '''# Method 1: Create dict and convert to JSON string
custom_metric_dict = {
    "customMetricDefinition": {
        "name": "PositiveSentiment",
        "instructions": (
            "You are an expert evaluator. Your task is to assess if the sentiment of the response is positive. "
            "Rate the response based on whether it conveys positive sentiment, helpfulness, and constructive tone.\\n\\n"
            "Consider the following:\\n"
            "- Does the response have a positive, encouraging tone?\\n"
            "- Is the response helpful and constructive?\\n"
            "- Does it avoid negative language or criticism?\\n\\n"
            "Rate on this scale:\\n"
            "- Good: Response has positive sentiment\\n"
            "- Poor: Response lacks positive sentiment\\n\\n"
            "Here is the actual task:\\n"
            "Prompt: {{prompt}}\\n"
            "Response: {{prediction}}"
        ),
        "ratingScale": [
            {"definition": "Good", "value": {"floatValue": 1}},
            {"definition": "Poor", "value": {"floatValue": 0}}
        ]
    }
}

# Convert to JSON string
custom_metrics_json = json.dumps([custom_metric_dict])  # Note: wrap in list
''',
    '''# Create evaluator with custom metrics
evaluator = LLMAsJudgeEvaluator(
    # base_model='arn:aws:sagemaker:us-west-2:<>:model-package/Demo-test-deb-2/1',  # Required
    model="arn:aws:sagemaker:us-west-2:<>:model-package/test-finetuned-models-gamma/28",
    evaluator_model="anthropic.claude-3-5-haiku-20241022-v1:0",  # Required
    dataset=DATASET,  # Required: S3 URI or Dataset ARN
    builtin_metrics=["Completeness", "Faithfulness"],  # Optional: Can combine with custom metrics
    custom_metrics=custom_metrics_json,  # Optional: JSON string of custom metrics
    mlflow_resource_arn=MLFLOW_ARN,  # Optional
    # model_package_group=MODEL_PACKAGE_GROUP,  # Optional if BASE_MODEL is a Model Package ARN/Object
    s3_output_path=S3_BUCKET,  # Required
    evaluate_base_model=False
)

pprint(evaluator)
''',
    '''# Run evaluation
execution = evaluator.evaluate()

print(f"✅ Evaluation job started!")
print(f"Job ARN: {execution.arn}")
print(f"Job Name: {execution.name}")
print(f"Status: {execution.status.overall_status}")

pprint(execution)
''',
    '''# Refresh status
execution.refresh()

# Display job status using rich pprint
pprint(execution.status)
''',
    '''# Wait for job completion (optional)
# This will poll every 5 seconds for up to 1 hour
execution.wait(poll=5, timeout=3600)
''',
    '''# Display results
execution.show_results(limit=10, offset=0, show_explanations=False)
''',
    '''# Get an existing job by ARN
# Replace with your actual pipeline execution ARN
existing_arn = 'arn:aws:sagemaker:us-west-2:<>:pipeline/SagemakerEvaluation-llmasjudge/execution/4hr7446yft1d'  # or use a specific ARN

from sagemaker.train.evaluate import EvaluationPipelineExecution
from rich.pretty import pprint

existing_execution = EvaluationPipelineExecution.get(
    arn=existing_arn,
    region="us-west-2"
)
pprint(existing_execution.status)

existing_execution.show_results(limit=5, offset=0, show_explanations=False)
''',
    '''from sagemaker.train.evaluate import LLMAsJudgeEvaluator

# Get all LLM-as-Judge evaluations as an iterator
all_executions = list(LLMAsJudgeEvaluator.get_all(region="us-west-2"))

print(f"Found {len(all_executions)} LLM-as-Judge evaluation jobs")
for execution in all_executions:
    print(f"  - {execution.name}: {execution.status.overall_status}")
''',
]
CELLS_PART2 = [
    '''# AWS Configuration
REGION = "us-east-1"
S3_BUCKET = "s3://<your-bucket>/llmaj-custom-model-eval/"

# Model Package ARN for your fine-tuned model (Section A)
MODEL_PACKAGE_ARN = "arn:aws:sagemaker:us-east-1:<account-id>:model-package/<package-name>/<version>"

# Nova model for auto-routed Bedrock evaluation (Section B)
NOVA_MODEL = "nova-textgeneration-lite"

# Judge model (evaluator) — used in both sections
EVALUATOR_MODEL = "amazon.nova-pro-v1:0"

# Dataset — S3 URI to a JSONL file with "prompt" or "query" field per line
DATASET = "s3://<your-bucket>/datasets/eval_prompts.jsonl"

# Optional: MLflow tracking server ARN
MLFLOW_ARN = "arn:aws:sagemaker:us-east-1:<account-id>:mlflow-tracking-server/<server-name>"
''',
    '''import json
from sagemaker.train.evaluate import LLMAsJudgeEvaluator, EvaluationPipelineExecution
from rich.pretty import pprint

# Configure logging to show INFO messages
import logging
logging.basicConfig(
    level=logging.INFO,
    format='%(levelname)s - %(name)s - %(message)s'
)
''',
    '''# Create evaluator with a fine-tuned model package
evaluator_finetuned = LLMAsJudgeEvaluator(
    model=MODEL_PACKAGE_ARN,
    evaluator_model=EVALUATOR_MODEL,
    dataset=DATASET,
    builtin_metrics=["Correctness", "Helpfulness", "Faithfulness"],
    mlflow_resource_arn=MLFLOW_ARN,
    s3_output_path=S3_BUCKET,
)

pprint(evaluator_finetuned)
''',
    '''# Start the evaluation
execution_a = evaluator_finetuned.evaluate()

print(f"Evaluation started!")
print(f"  ARN: {execution_a.arn}")
print(f"  Name: {execution_a.name}")
print(f"  Status: {execution_a.status.overall_status}")
''',
    '''# Wait for completion (polls every 30 seconds, timeout after 2 hours)
execution_a.wait(poll=30, timeout=7200)

print(f"Final status: {execution_a.status.overall_status}")
''',
    '''# View evaluation results
execution_a.show_results(limit=10, offset=0, show_explanations=False)
''',
    '''# Create evaluator with a Nova model — auto-routes to InspectAI+Bedrock
evaluator_nova = LLMAsJudgeEvaluator(
    model=NOVA_MODEL,
    evaluator_model=EVALUATOR_MODEL,
    dataset=DATASET,
    builtin_metrics=["Correctness", "Helpfulness"],
    mlflow_resource_arn=MLFLOW_ARN,
    s3_output_path=S3_BUCKET,
)

pprint(evaluator_nova)
''',
    '''# Start the evaluation
execution_b = evaluator_nova.evaluate()

print(f"Evaluation started!")
print(f"  ARN: {execution_b.arn}")
print(f"  Name: {execution_b.name}")
print(f"  Status: {execution_b.status.overall_status}")
''',
    '''# Wait for completion
execution_b.wait(poll=30, timeout=7200)

print(f"Final status: {execution_b.status.overall_status}")
''',
    '''# View evaluation results
execution_b.show_results(limit=10, offset=0, show_explanations=False)
''',
    '''# Replace with your actual pipeline execution ARN
existing_arn = "arn:aws:sagemaker:us-east-1:<account-id>:pipeline/<pipeline-name>/execution/<execution-id>"

existing_execution = EvaluationPipelineExecution.get(
    arn=existing_arn,
    region=REGION
)

pprint(existing_execution.status)
existing_execution.show_results(limit=5, offset=0, show_explanations=False)
''',
    '''# Get all LLM-as-Judge evaluations
all_executions = list(LLMAsJudgeEvaluator.get_all(region=REGION))

print(f"Found {len(all_executions)} LLM-as-Judge evaluation jobs")
for exec_item in all_executions:
    print(f"  - {exec_item.name}: {exec_item.status.overall_status}")
''',
    '''# Refresh and display step-level status
execution_b.refresh()
pprint(execution_b.status)
''',
]
PART1_EXECUTION_ARN = "arn:aws:sagemaker:us-west-2:<>:pipeline/SagemakerEvaluation-llmasjudge/execution/4hr7446yft1d"
PART2_EXECUTION_ARN = "arn:aws:sagemaker:us-east-1:<account-id>:pipeline/<pipeline-name>/execution/<execution-id>"


class Models:
    """The fake's answers: temporary endpoints through the witness, Nova lite a fixed answer, the judges a verdict
    per metric (found by its instructions in the prompt); PositiveSentiment Good for the endpoint's cheerful
    answer."""

    def __init__(self, witness: EndpointWitness) -> None:
        self.witness = witness
        self.keys = {builtin_metric(name).instructions[:80]: verdict for name, verdict in VERDICTS.items()}

    def __call__(self, prompt: str, model: str) -> str:
        if self.witness.owns(model):
            return self.witness(prompt, model)
        if model == NOVA_PROFILE:
            return NOVA_ANSWER
        if "sentiment of the response is positive" in prompt:
            return "Upbeat.\nVerdict: " + ("Good" if "Happy to help" in blocks(prompt).get("prediction", "") else
                                            "Poor")
        found = [verdict for key, verdict in self.keys.items() if key in prompt]
        return f"Judged.\nVerdict: {found[0] if len(found) == 1 else '???'}"


def level_score(metric: str, label: str) -> float:
    """The score of ``label`` on the metric's scale, computed here: levels evenly spaced from 1 (first) to 0."""
    levels = [level.definition for level in builtin_metric(metric).rating_scale]
    return 1.0 - levels.index(label) / (len(levels) - 1)


@pytest.fixture
def doubles(aws_env: str, eval_home: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[FakeLLMServer, EndpointWitness]]:
    witness = EndpointWitness(regions=("us-west-2", "us-east-1"))
    with SageMakerControlPlane(aws_env) as plane, FakeLLMServer(answer=Models(witness)) as server:
        for name, value in {"AWS_ENDPOINT_URL_SAGEMAKER": plane.url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url,
                            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": server.url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("EVAL_PIPELINE_DAGSTER_URL", raising=False)
        s3 = boto3.client("s3")
        for bucket in ("mufi-test-serverless-smtj", "my-sagemaker-sherpa-dataset", "llmaj-bucket"):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket="my-sagemaker-sherpa-dataset", Key="dataset/gen-qa-formatted-dataset/gen_qa.jsonl",
                      Body="".join(json.dumps({"prompt": q, "referenceResponse": "Paris" if i == 0 else "4"}) + "\n"
                                   for i, q in enumerate(PART1_QUESTIONS)))
        s3.put_object(Bucket="llmaj-bucket", Key="datasets/eval_prompts.jsonl",
                      Body="".join(json.dumps({"prompt": p}) + "\n" for p in PART2_PROMPTS))
        create_model_package("us-west-2", "test-finetuned-models-gamma", versions=28)
        create_model_package("us-east-1", "nova-custom", base_model="nova-textgeneration-lite")
        yield server, witness


def filled_in(cell: str, tracking_uri: str) -> str:
    """The cell with the user's values: only the imports and the placeholders change."""
    cell = cell.replace(IMPORT, "from eval_pipeline.sdk import")
    for placeholder, value in (("<account-id>", ACCOUNT), (":<>:", f":{ACCOUNT}:"), ("<your-bucket>", "llmaj-bucket"),
                               ("<package-name>/<version>", "nova-custom/1"), ("<server-name>", "llmaj-server")):
        cell = cell.replace(placeholder, value)
    if not PLUGIN:
        lines = [f"MLFLOW_ARN = {tracking_uri!r}" if line.startswith("MLFLOW_ARN = ") else line
                 for line in cell.splitlines()]
        cell = "\n".join(lines) + "\n"
    return cell


def run_cells(cells: list[str], namespace: dict[str, Any], tracking_uri: str, started: list[str]) -> None:
    for cell in cells:
        for placeholder in (PART1_EXECUTION_ARN, PART2_EXECUTION_ARN):
            if placeholder in cell:  # "Replace with your actual pipeline execution ARN"
                cell = cell.replace(placeholder, namespace[started[-1]].arn)
        exec(compile(filled_in(cell, tracking_uri), "<notebook cell>", "exec"), namespace)
        for name in ("execution", "execution_a", "execution_b"):
            if f"{name} = " in cell and "evaluate()" in cell:
                started.append(name)
                _until_done(namespace[name])


def _until_done(execution: Any, timeout_s: float = 240.0) -> None:
    """What a person does between cells: wait for the run to end (the next cell reads it)."""
    deadline = time.monotonic() + timeout_s
    while not execution.status.terminal:
        assert time.monotonic() < deadline, f"execution {execution.id} still running"
        time.sleep(0.2)


@pytest.fixture
def sagemaker_mlflow(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> Iterator[tuple[str, SageMakerMlflowGateway] | None]:
    """The MLflow server the notebook's ARNs reach through the plugin (its URL) and the gateway in front of it;
    None without the plugin."""
    if not PLUGIN:
        yield None
        return
    with mlflow_server(tmp_path / "sagemaker-mlflow") as url, \
            SageMakerMlflowGateway(url, secrets={"testing": "testing"}) as gateway:  # aws_env's credentials
        monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", gateway.url)
        yield url, gateway


@pytest.mark.slow
def test_the_notebooks_cells_run_verbatim(doubles: tuple[FakeLLMServer, EndpointWitness],
                                         sagemaker_mlflow: tuple[str, SageMakerMlflowGateway] | None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    server, witness = doubles
    tracking_uri = default_tracking_uri()  # one store to migrate: the state folder's, named explicitly
    part1: dict[str, Any] = {"__name__": "__notebook__"}
    started: list[str] = []
    run_cells(CELLS_PART1, part1, tracking_uri, started)
    out = capsys.readouterr().out
    assert "Found 1 LLM-as-Judge evaluation jobs" in out and ": Succeeded" in out

    # Part 1: the package on a temporary endpoint in us-west-2, InService whenever it answered, gone after
    first = part1["existing_execution"]
    assert first.status.overall_status == "Succeeded", first.status.failure_reason
    part1_endpoints = {name for name, _ in witness.seen}
    assert len(part1_endpoints) == 1 and {status for _, status in witness.seen} == {"InService"}
    assert len(witness.seen) == len(PART1_QUESTIONS)
    items = first.results().items
    assert (items["Completeness"] == level_score("Completeness", "Mostly complete")).all()
    assert (items["Faithfulness"] == level_score("Faithfulness", "Fully faithful")).all()
    assert (items["PositiveSentiment"] == 1.0).all() and items["response"].eq(witness.answer).all()
    assert first.record["config"]["model"].startswith("sagemaker_package:arn:aws:sagemaker:us-west-2:")
    assert first.record["mlflow_tracking_uri"] == (PART1_MLFLOW_ARN if PLUGIN else tracking_uri)
    assert sagemaker_resources("us-west-2") == {"endpoints": [], "configs": [], "models": []}

    # Part 2: section A (package + its Nova base model, compared), section B (the Nova name through Bedrock)
    part2: dict[str, Any] = {"__name__": "__notebook__"}
    run_cells(CELLS_PART2, part2, tracking_uri, started)
    out = capsys.readouterr().out
    assert "Found 3 LLM-as-Judge evaluation jobs" in out and out.count("Final status: Succeeded") == 2
    execution_a, execution_b = part2["execution_a"], part2["execution_b"]
    assert execution_a.record["baseline"] == "nova-textgeneration-lite"
    assert [(m["role"], m["spec"]) for m in execution_a.record["models"]] == [
        ("model", f"sagemaker_package:arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/nova-custom/1"),
        ("base", f"bedrock:{NOVA_PROFILE}")]
    assert execution_b.record["config"]["model"] == f"bedrock:{NOVA_PROFILE}"
    part2_endpoints = {name for name, _ in witness.seen} - part1_endpoints
    assert len(part2_endpoints) == 1 and {status for _, status in witness.seen} == {"InService"}
    assert sagemaker_resources("us-east-1") == {"endpoints": [], "configs": [], "models": []}
    both = execution_a.results().items
    expected = {"Correctness": level_score("Correctness", "Partially correct"),
                "Helpfulness": level_score("Helpfulness", "Helpful"),
                "Faithfulness": level_score("Faithfulness", "Fully faithful")}
    for metric, value in expected.items():
        assert (both[metric] == value).all(), metric
    nova = execution_b.results().items
    assert nova["response"].eq(NOVA_ANSWER).all() and (nova["Helpfulness"] == expected["Helpfulness"]).all()
    assert server.requests_by_protocol["bedrock"] > 0

    # MLflow: each model's run is on the tracking server its ARN names, logged through the plugin (SigV4-signed)
    if sagemaker_mlflow is not None:
        server_url, gateway = sagemaker_mlflow
        client = MlflowClient(server_url)
        for execution, arn in ((first, PART1_MLFLOW_ARN), (execution_a, PART2_MLFLOW_ARN),
                               (execution_b, PART2_MLFLOW_ARN)):
            assert execution.record["mlflow_tracking_uri"] == arn
            runs = execution.record["mlflow_runs"]
            assert {m["name"] for m in execution.record["models"]} <= set(runs)  # and a comparison run
            for model, run_id in runs.items():
                run = client.get_run(run_id)
                assert run.info.status == "FINISHED" and run.data.metrics, model
        helpful = client.get_run(execution_b.record["mlflow_runs"][execution_b.record["models"][0]["name"]])
        assert helpful.data.metrics["Helpfulness"] == pytest.approx(expected["Helpfulness"])
        assert gateway.seen and all(seen.verified and seen.authorization.startswith("AWS4-HMAC-SHA256 ")
                                    for seen in gateway.seen)
        assert {seen.arn for seen in gateway.seen} == {PART1_MLFLOW_ARN, PART2_MLFLOW_ARN}
