"""The SDK in webserver mode: ``LLMAsJudgeEvaluator(dagster_url=...)`` against a real ``dagster-webserver`` +
``dagster-daemon``: the suite file is written to the shared state folder, the code location reloaded over GraphQL,
one run per model launched there, the comparison after them; stop() terminates the runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval_pipeline.sdk import EvaluationExecution, LLMAsJudgeEvaluator
from eval_pipeline.sdk.status import EXECUTION_TAG
from tests.dagster_live import LiveDagster, live_dagster
from tests.fakes import FakeLLMServer
from tests.test_sdk import BASE_ID, JUDGE_ID, MODEL_ID, QUESTIONS, ScriptedBedrock, custom_metrics_json

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveDagster, FakeLLMServer]]:
    """A fake Bedrock (models and judge), then webserver + daemon whose runs reach it through the environment."""
    root = tmp_path_factory.mktemp("sdk-live")
    suites = root / "suites"
    suites.mkdir()
    with FakeLLMServer(answer=ScriptedBedrock()) as server, pytest.MonkeyPatch.context() as env:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": server.url}.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
            env.delenv(name, raising=False)
        with live_dagster(root / "deployment", suites) as live:
            yield live, server


@pytest.fixture
def client_env(deployment: tuple[LiveDagster, FakeLLMServer], monkeypatch: pytest.MonkeyPatch) -> LiveDagster:
    """This process shares the deployment's state folder (suite files, tables, execution records)."""
    live, server = deployment
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(live.state_home))
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    server.latency_s = 0.0
    return live


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    path = tmp_path / "gen_qa.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": q, "referenceResponse": "42"}) + "\n"
                            for i, q in enumerate(QUESTIONS)), encoding="utf-8")
    return str(path)


def test_evaluate_on_the_webserver(client_env: LiveDagster, dataset: str, capsys: pytest.CaptureFixture[str]) -> None:
    live = client_env
    evaluator = LLMAsJudgeEvaluator(model=MODEL_ID, base_model=BASE_ID, evaluator_model=JUDGE_ID, dataset=dataset,
                                    custom_metrics=custom_metrics_json, name="live_sdk", dagster_url=live.base_url)
    execution = evaluator.evaluate()
    status = execution.wait(poll=1, timeout=RUN_TIMEOUT_S)
    assert status.overall_status == "Succeeded", f"{status}\n{live.log_tails()}"
    assert [(s.kind, s.status) for s in status.step_details] == [("eval", "Succeeded")] * 2 + [
        ("compare", "Succeeded")]
    runs = live.runs(tags={EXECUTION_TAG: execution.id})
    assert sorted(r["jobName"] for r in runs) == ["live_sdk_compare", "live_sdk_eval", "live_sdk_eval"]
    assert {r["runId"] for r in runs} == {s.dagster_run_id for s in status.step_details}

    items = execution.show_results()
    assert "Comparison with the base model" in capsys.readouterr().out
    assert items.groupby("model")["PositiveSentiment"].mean().to_dict() == {
        "amazon.nova-micro-v1-0": 1.0, "amazon.nova-lite-v1-0": 0.0}
    assert items.attrs["comparison"]["diff"].tolist() == [1.0]
    assert len(execution.bedrock_outputs) == 2
    assert EvaluationExecution.get(execution.id).status.overall_status == "Succeeded"


def test_stop_on_the_webserver(client_env: LiveDagster, dataset: str,
                               deployment: tuple[LiveDagster, FakeLLMServer]) -> None:
    live, server = deployment
    server.latency_s = 2.0
    execution = LLMAsJudgeEvaluator(model=MODEL_ID, base_model=BASE_ID, evaluator_model=JUDGE_ID, dataset=dataset,
                                    builtin_metrics=["Coherence"], name="live_stop",
                                    dagster_url=live.base_url).evaluate()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not any(s.status == "Executing" for s in execution.status.step_details):
        assert time.monotonic() < deadline, f"{execution.status}\n{live.log_tails()}"
        time.sleep(0.5)
    execution.stop()
    final = execution.wait(poll=1, timeout=RUN_TIMEOUT_S)
    assert final.overall_status == "Stopped", f"{final}\n{live.log_tails()}"
    assert "Stopped" in {s.status for s in final.step_details[:2]}
    assert final.step_details[2].status == "Pending"  # the comparison was never launched
