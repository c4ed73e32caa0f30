"""``mlflow_resource_arn`` as the seed's notebook gives it: a SageMaker MLflow tracking-server ARN, read through the
real ``sagemaker-mlflow`` plugin (its ``arn`` store, its SigV4 signer over boto3's credentials, its routing header).

The plugin resolves the ARN to ``https://<region>.experiments.sagemaker.aws`` without a control-plane call, or to
``$SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT``: here a gateway that checks each request's signature and ARN header as
SageMaker's front door does, in front of a real ``mlflow server`` (``tests/fakes/sagemaker_mlflow.py``). The runs
are read back from that server with ``MlflowClient``.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from mlflow.tracking import MlflowClient

from eval_pipeline.assets.release_gate import record_release_gate
from eval_pipeline.errors import EvalInputError
from eval_pipeline.metrics.gates import GateResult
from eval_pipeline.sdk.evaluation_launch import mlflow_tracking_uri
from eval_pipeline.tracking.sagemaker_arn import SAGEMAKER_EXTRA, arn_tracking_scope
from tests.fakes import FakeLLMServer
from tests.fakes.sagemaker_mlflow import SageMakerMlflowGateway, mlflow_server
from tests.test_sdk_logging import JUDGE_REPLY, NOTEBOOK

REPO = Path(__file__).resolve().parent.parent
ARN = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/mmlu-eval-experiment"
APP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-7x2k"
KEY, SECRET = "AKIDEVALPIPELINE", "secret-for-the-gateway"


class _NoPlugin(importlib.abc.MetaPathFinder):
    """An environment without the plugin: its import is not found."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "sagemaker_mlflow" or name.startswith("sagemaker_mlflow."):
            raise ModuleNotFoundError(name)


# --- fast: the checks made when the evaluator is built, and the gateway's signature check -------------------------

@pytest.mark.parametrize(("value", "message"), [
    ("arn:aws:sagemaker:us-west-2:123456789012:notebook-instance/x", "not a SageMaker MLflow ARN"),
    ("arn:aws-cn:sagemaker:cn-north-1:123456789012:mlflow-tracking-server/x", "not a SageMaker MLflow ARN"),
    ("arn:aws:sagemaker:us-west-2:<>:mlflow-tracking-server/x", "not a SageMaker MLflow ARN"),
    ("arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/<server-name>", "not a SageMaker MLflow ARN"),
    ("arn:aws:s3:us-west-2:123456789012:mlflow-tracking-server/x", "not a SageMaker MLflow ARN"),
])
def test_a_malformed_arn_is_refused_with_its_form(value: str, message: str) -> None:
    with pytest.raises(EvalInputError, match=message) as error:
        mlflow_tracking_uri(value, None)
    assert error.value.field == "mlflow_resource_arn"
    assert "arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>" in str(error.value)


def test_an_arn_without_the_plugin_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mlflow_tracking_uri(f" {ARN} ", None) == ARN  # the plugin is installed here
    assert mlflow_tracking_uri(APP_ARN, None) == APP_ARN
    monkeypatch.setattr(sys, "meta_path", [_NoPlugin(), *sys.meta_path])
    for name in [name for name in sys.modules if name.split(".")[0] == "sagemaker_mlflow"]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(EvalInputError, match="sagemaker-mlflow plugin") as error:
        mlflow_tracking_uri(ARN, None)
    assert error.value.field == "mlflow_resource_arn" and SAGEMAKER_EXTRA in str(error.value)
    assert "pip install 'eval-pipeline[sagemaker]'" in str(error.value)


def test_the_gateway_accepts_only_a_right_signature() -> None:
    """The double can fail: a wrong secret, a changed body or a changed path is refused."""
    body = b'{"name": "x"}'
    request = AWSRequest(method="POST", url="http://127.0.0.1:5000/api/2.0/mlflow/experiments/create", data=body,
                         headers={"Content-Type": "application/json",
                                  "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    SigV4Auth(Credentials(KEY, SECRET), "sagemaker-mlflow", "us-west-2").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()} | {"host": "127.0.0.1:5000"}
    path = "/api/2.0/mlflow/experiments/create"
    gateway = SageMakerMlflowGateway("http://unused", secrets={KEY: SECRET})
    assert gateway.verify("POST", path, headers, body) == ("sagemaker-mlflow", True)
    assert gateway.verify("POST", path + "x", headers, body)[1] is False
    assert gateway.verify("POST", path, headers, b'{"name": "y"}')[1] is False
    other = SageMakerMlflowGateway("http://unused", secrets={KEY: "other"})
    assert other.verify("POST", path, headers, body)[1] is False


# --- slow: real evaluations logged through the plugin to a local MLflow server ------------------------------------

@pytest.fixture(scope="module")
def sagemaker_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SageMakerMlflowGateway]]:
    """The MLflow server's own URL, and the gateway the plugin is pointed at."""
    with mlflow_server(tmp_path_factory.mktemp("sagemaker-mlflow")) as url, \
            SageMakerMlflowGateway(url, secrets={KEY: SECRET}) as gateway:
        yield url, gateway


@pytest.fixture
def plugin_env(sagemaker_mlflow: tuple[str, SageMakerMlflowGateway], eval_home: Path,
               monkeypatch: pytest.MonkeyPatch) -> SageMakerMlflowGateway:
    _, gateway = sagemaker_mlflow
    for name, value in {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                        "SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT": gateway.url, "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SAGEMAKER_MLFLOW_ASSUME_ROLE_ARN", "EVAL_PIPELINE_DAGSTER_URL"):
        monkeypatch.delenv(name, raising=False)
    gateway.seen.clear()
    return gateway


def _assert_signed_by_the_plugin(gateway: SageMakerMlflowGateway, arn: str, service: str) -> None:
    assert gateway.seen, "no request reached the SageMaker MLflow endpoint"
    assert all(seen.authorization.startswith("AWS4-HMAC-SHA256 Credential=" + KEY) for seen in gateway.seen)
    assert {(seen.arn, seen.service, seen.verified) for seen in gateway.seen} == {(arn, service, True)}


@pytest.mark.slow
def test_a_notebook_logs_to_a_sagemaker_tracking_server_arn(plugin_env: SageMakerMlflowGateway, tmp_path: Path,
                                                            sagemaker_mlflow: tuple[str, SageMakerMlflowGateway],
                                                            eval_home: Path) -> None:
    """The seed's notebook in its own process (mlflow not imported: the run logs through the helper process)."""
    server_url, gateway = sagemaker_mlflow
    dataset = tmp_path / "gen_qa.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": f"What is {i} + 40?", "referenceResponse": str(i + 40)}) + "\n"
                               for i in range(3)), encoding="utf-8")
    with FakeLLMServer(answer=lambda prompt, model: JUDGE_REPLY if model == "judge" else "42.") as llm:
        env = {**os.environ, "EVAL_PIPELINE_HOME": str(eval_home)}
        env.pop("MLFLOW_TRACKING_URI", None)
        done = subprocess.run([sys.executable, "-c", NOTEBOOK, f"{llm.url}/v1", str(dataset), ARN], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["state"] == "Succeeded" and result["run"]

    run = MlflowClient(server_url).get_run(result["run"])  # read straight from the server, not through the plugin
    assert "answerer" in run.info.run_name and run.info.status == "FINISHED"
    assert run.data.metrics["Tone"] == 1.0  # the judge said Good (1.0) for each of the 3 items
    assert MlflowClient(server_url).get_experiment(run.info.experiment_id).name == "eval/notebook_logs"
    assert not (eval_home / "mlflow" / "mlflow.db").exists()  # nothing went to the state folder's store
    _assert_signed_by_the_plugin(gateway, ARN, "sagemaker-mlflow")
    assert any(seen.path.endswith("/runs/log-batch") for seen in gateway.seen)
    assert "Encountered unexpected error during resolving request headers" not in done.stderr


@pytest.mark.slow
def test_an_evaluation_in_this_process_logs_through_the_plugin(plugin_env: SageMakerMlflowGateway, tmp_path: Path,
                                                               sagemaker_mlflow: tuple[str, SageMakerMlflowGateway],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow imported here already (a notebook that uses it): the run logs in this process, and MLflow's tracking
    URI is the caller's again afterwards."""
    from eval_pipeline.sdk import LLMAsJudgeEvaluator

    server_url, gateway = sagemaker_mlflow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'own.db'}")  # the caller's own store
    before = mlflow.get_tracking_uri()
    dataset = tmp_path / "gen_qa.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": f"Say {word}", "referenceResponse": word}) + "\n"
                               for word in ("a", "b")), encoding="utf-8")
    metric = {"customMetricDefinition": {"name": "Tone", "instructions": "Rate {{prediction}} for {{prompt}}",
              "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                              {"definition": "Poor", "value": {"floatValue": 0}}]}}
    with FakeLLMServer(answer=lambda prompt, model: JUDGE_REPLY if model == "judge" else "ok") as llm:
        evaluator = LLMAsJudgeEvaluator(
            model={"backend": "openai", "base_url": f"{llm.url}/v1", "model": "answerer", "name": "answerer"},
            evaluator_model={"backend": "openai", "base_url": f"{llm.url}/v1", "model": "judge"},
            dataset=str(dataset), custom_metrics=json.dumps([metric]), mlflow_resource_arn=APP_ARN,
            mlflow_experiment_name="arn-in-process", name="arn_in_process")
        execution = evaluator.evaluate()
        status = execution.wait(poll=0.2, timeout=120)
    assert status.overall_status == "Succeeded", status.failure_reason
    run_id = execution.record["mlflow_runs"]["answerer"]
    run = MlflowClient(server_url).get_run(run_id)
    assert run.data.metrics["Tone"] == 1.0
    assert MlflowClient(server_url).get_experiment(run.info.experiment_id).name == "arn-in-process"
    # a release gate's verdict recorded on that run later (the Dagster asset check), through the plugin too
    record_release_gate(APP_ARN, run_id, GateResult("release_gate", "answerer", False, 0.2, 0.05, reason="worse"))
    gated = MlflowClient(server_url).get_run(run_id)
    assert gated.info.status == "FAILED" and gated.data.tags["gate.release_gate"] == "worse"
    _assert_signed_by_the_plugin(gateway, APP_ARN, "sagemaker")  # an MLflow app: signed for service "sagemaker"
    assert mlflow.get_tracking_uri() == before and os.environ["MLFLOW_TRACKING_URI"] == before


def test_the_scope_puts_the_callers_tracking_uri_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    with arn_tracking_scope(ARN):
        assert mlflow.get_tracking_uri() == ARN
    assert not mlflow.is_tracking_uri_set() and "MLFLOW_TRACKING_URI" not in os.environ
    own = f"sqlite:///{tmp_path / 'own.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own)
    with arn_tracking_scope("http://127.0.0.1:5000"):  # not an ARN: nothing changes
        assert mlflow.get_tracking_uri() == own
    with pytest.raises(RuntimeError), arn_tracking_scope(ARN):
        raise RuntimeError("a failed call")
    assert mlflow.get_tracking_uri() == own and os.environ["MLFLOW_TRACKING_URI"] == own
