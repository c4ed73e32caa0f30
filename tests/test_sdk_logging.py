"""The seed's notebook logs at INFO: the SDK's own lines print, the stores' migrations do not; a judge that fences
its replies reads cleanly in ``show_results``; ``mlflow_resource_arn`` sends the runs to another MLflow store."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.errors import EvalInputError
from eval_pipeline.sdk.evaluation_launch import mlflow_tracking_uri
from eval_pipeline.sdk.quiet_logs import STORE_LOGGERS, quiet_store_logs
from tests.fakes import FakeLLMServer

REPO = Path(__file__).resolve().parent.parent
MIGRATION_NOISE = ("alembic", "Running upgrade", "Running stamp_revision", "Context impl", "non-transactional DDL",
                   "Creating initial MLflow database tables", "Updating database tables")
JUDGE_REPLY = ("```explanation\nThe reply answers the question with a number, as asked.\n```\n"
               "```\nVerdict: Good\n```")

NOTEBOOK = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(name)s - %(message)s")  # the seed's first cell
from eval_pipeline.sdk import LLMAsJudgeEvaluator

url, dataset, tracking = sys.argv[1:4]
metric = {"customMetricDefinition": {"name": "Tone", "instructions": "Rate {{prediction}} for {{prompt}}",
          "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                          {"definition": "Poor", "value": {"floatValue": 0}}]}}
evaluator = LLMAsJudgeEvaluator(
    model={"backend": "openai", "base_url": url, "model": "answerer", "name": "answerer"},
    evaluator_model={"backend": "openai", "base_url": url, "model": "judge"},
    dataset=dataset, custom_metrics=json.dumps([metric]), mlflow_resource_arn=tracking, name="notebook_logs")
execution = evaluator.evaluate()
status = execution.wait(poll=0.2, timeout=120)
execution.show_results(limit=2, show_explanations=True, use_rich=False)
items = execution.results(show_explanations=True).items
print("RESULT " + json.dumps({"state": status.overall_status,
                              "run": execution.record.get("mlflow_runs", {}).get("answerer"),
                              "explanations": items["Tone explanation"].tolist()}))
"""


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer=lambda prompt, model: JUDGE_REPLY if model == "judge" else "42.") as fake:
        yield fake


@pytest.mark.slow
def test_a_notebook_at_info_prints_the_sdks_lines_and_no_migrations(eval_home: Path, tmp_path: Path,
                                                                     server: FakeLLMServer) -> None:
    dataset = tmp_path / "gen_qa.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": f"What is {i} + 40?", "referenceResponse": str(i + 40)}) + "\n"
                               for i in range(3)), encoding="utf-8")
    tracking = f"sqlite:///{tmp_path / 'team_mlflow.db'}"
    env = {**os.environ, "EVAL_PIPELINE_HOME": str(eval_home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("EVAL_PIPELINE_DAGSTER_URL", None)
    done = subprocess.run([sys.executable, "-c", NOTEBOOK, f"{server.url}/v1", str(dataset), tracking], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["state"] == "Succeeded"

    # a fresh state folder: both stores were created and migrated, and none of it reached the log
    assert (eval_home / "dagster").exists() and (tmp_path / "team_mlflow.db").is_file()
    log = done.stderr
    noise = [line for line in log.splitlines() if any(word in line for word in MIGRATION_NOISE)]
    assert not noise, noise
    assert "- DEBUG -" not in log and "dagster - " not in log  # no Dagster event noise either
    # ... while the SDK says what it is doing
    assert "INFO - eval_pipeline.sdk.evaluation_launch - started execution llmaj-notebook_logs-" in log
    step = r"INFO - eval_pipeline.sdk.in_process - execution llmaj-notebook_logs-[0-9a-f]{8}"
    assert re.search(rf"{step}: evaluate/answerer succeeded$", log, re.M)
    assert re.search(rf"{step} Succeeded$", log, re.M)

    # the judge fenced its reasoning and its verdict: the explanation is the sentence alone
    sentence = "The reply answers the question with a number, as asked."
    assert result["explanations"] == [sentence] * 3
    assert "```" not in done.stdout and f"    {sentence}" in done.stdout.splitlines()

    # mlflow_resource_arn: the run is in the store named, not in the state folder's
    run = MlflowClient(tracking).get_run(result["run"])
    assert "answerer" in run.info.run_name and run.data.metrics["Tone"] == 1.0
    assert not (eval_home / "mlflow" / "mlflow.db").exists()


@pytest.fixture
def store_loggers() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in STORE_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_only_unconfigured_loggers_are_quieted(store_loggers: None) -> None:
    """A level nobody set is raised to WARNING; a level the user chose stays, so migrations can be shown."""
    alembic, mlflow_db = (logging.getLogger(name) for name in STORE_LOGGERS)
    root = logging.getLogger().level, list(logging.getLogger().handlers)
    alembic.setLevel(logging.NOTSET)
    mlflow_db.setLevel(logging.INFO)
    assert quiet_store_logs() == ["alembic"]
    assert alembic.level == logging.WARNING and mlflow_db.level == logging.INFO
    assert quiet_store_logs() == []  # idempotent
    assert (logging.getLogger().level, logging.getLogger().handlers) == root  # the root logger is not touched


@pytest.mark.parametrize(("value", "message"), [
    ("arn:aws:sagemaker:us-west-2:123456789012:notebook-instance/x", "not a SageMaker MLflow ARN"),
    ("/tmp/mlruns", "give an MLflow tracking URI"),
    ("file:///tmp/mlruns", "file store is in maintenance mode"),
    ("ftp://host/x", "unknown tracking URI scheme"),
])
def test_mlflow_resource_arn_is_checked_when_the_evaluator_is_built(value: str, message: str) -> None:
    with pytest.raises(EvalInputError, match=message) as error:
        mlflow_tracking_uri(value, None)
    assert error.value.field == "mlflow_resource_arn"


def test_mlflow_resource_arn_takes_tracking_uris_and_not_a_webserver() -> None:
    assert mlflow_tracking_uri("http://127.0.0.1:5000", None) == "http://127.0.0.1:5000"
    assert mlflow_tracking_uri("sqlite:///tmp/x.db", None) == "sqlite:///tmp/x.db"
    assert mlflow_tracking_uri(" ", None) is None and mlflow_tracking_uri(None, None) is None
    with pytest.raises(EvalInputError, match="webserver logs to the MLflow store its deployment configures"):
        mlflow_tracking_uri("http://127.0.0.1:5000", "http://127.0.0.1:3000")
