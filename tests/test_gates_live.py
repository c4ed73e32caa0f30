"""A failed gate in webserver mode: the SDK submits to a real ``dagster-webserver`` + daemon; the blocking
``error_rate`` check fails the run there, and the execution reports Failed with the gate's reason, read back
over GraphQL."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.sdk import LLMAsJudgeEvaluator
from eval_pipeline.tracking import default_tracking_uri
from tests.dagster_live import LiveDagster
from tests.test_sdk import JUDGE_ID, MODEL_ID, QUESTIONS
from tests.test_sdk_live import RUN_TIMEOUT_S, client_env, dataset, deployment  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def test_a_failed_gate_fails_the_execution_on_the_webserver(client_env: LiveDagster, dataset: str) -> None:  # noqa: F811
    """The scripted judge answers "Verdict: ???" for Coherence, a metric it has no rule for: every judgment errors."""
    live = client_env
    execution = LLMAsJudgeEvaluator(model=MODEL_ID, evaluator_model=JUDGE_ID, dataset=dataset,
                                    builtin_metrics=["Coherence"], name="live_gate",
                                    dagster_url=live.base_url).evaluate()
    status = execution.wait(poll=1, timeout=RUN_TIMEOUT_S)
    assert status.overall_status == "Failed", f"{status}\n{live.log_tails()}"
    [step] = status.step_details
    assert step.status == "Failed"
    expected = f"{len(QUESTIONS)} of {len(QUESTIONS)} metric inputs errored"
    assert "gate error_rate failed" in status.failure_reason and expected in status.failure_reason
    [gate] = step.gates
    assert (gate.check, gate.passed, gate.observed, gate.allowed) == ("error_rate", False, 1.0, 0.0)
    assert gate.detail["judgment_errors"] == len(QUESTIONS)
    client = MlflowClient(default_tracking_uri())
    [run] = client.search_runs([client.get_experiment_by_name("eval/live_gate").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["gate.failed"] == "error_rate"
