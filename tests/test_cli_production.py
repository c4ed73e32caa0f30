"""What ``eval-pipeline run`` says about the production stage: a rollout suite's own summary (rollouts, from the store,
run, errors), not a generation line of zeros; a generate suite's generation line as before; ``--json`` both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.cli import _print_result, _result_json, main
from eval_pipeline.execution import ModelRun, SuiteRun
from eval_pipeline.tasks.base import Production
from tests.fakes.lambda_fake import LambdaFake

REPO = Path(__file__).resolve().parent.parent
LAMBDA_SUITE = REPO / "tests" / "fixtures" / "rollout_suites" / "evals" / "lambda_agent.yaml"


def test_the_summary_is_part_of_the_production_metadata() -> None:
    produced = Production(pd.DataFrame(), {"rollouts": 4}, summary="rollouts for m: 4 rollouts")
    assert produced.metadata == {"rollouts": 4, "summary": "rollouts for m: 4 rollouts"}
    assert Production(pd.DataFrame(), {"requests": 1}).metadata == {"requests": 1}  # no summary: no entry


def model_run(name: str, stage: str, counts: dict[str, object], summary: str) -> ModelRun:
    metrics = pd.DataFrame([{"suite": "s", "model": name, "metric": "success_rate", "breakdown_key": None,
                             "breakdown_value": None, "value": 0.5, "stderr": 0.1, "ci_low": 0.3, "ci_high": 0.7,
                             "n": 8, "errors": 0, "k": None, "ci_method": "task_bootstrap"}])
    return ModelRun(model=name, dagster_run_id="0123456789ab", success=True, metrics=metrics, generation=counts,
                    production_stage=stage, production_summary=summary, outputs={"metrics": "/o/s/metrics/m.parquet"})


def test_each_stage_prints_its_own_counts(capsys: pytest.CaptureFixture[str]) -> None:
    rollouts = model_run("agent", "rollouts", {"rollouts": 32, "from_store": 0, "ran": 32, "errors": 0},
                         "rollouts for agent: 32 rollouts: 0 from the store, 32 run, 0 errors (0 out of time)")
    answers = model_run("lm", "generations", {"requests": 6, "cached": 6, "generated": 0, "errors": 0},
                        "generation for lm: 6 requests: 6 from cache, 0 generated, 0 errors")
    result = SuiteRun("s", [rollouts, answers])
    _print_result(result)
    out = capsys.readouterr().out
    assert "rollouts for agent: 32 rollouts: 0 from the store, 32 run, 0 errors (0 out of time)" in out
    assert "generation: 6 requests, 6 from cache, 0 generated, 0 errors  (nothing generated: all cached)" in out
    assert out.count("generation:") == 1  # none for the rollout suite
    production = _result_json(result)["production"]
    assert production["agent"] == {"stage": "rollouts", "summary": rollouts.production_summary, "rollouts": 32,
                                   "from_store": 0, "ran": 32, "errors": 0}
    assert production["lm"]["stage"] == "generations" and production["lm"]["generated"] == 0


@pytest.fixture
def lambda_agent(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaFake]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with LambdaFake(lambda invocation: {"response": "I think it is 0."}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.url)
        yield server


@pytest.mark.slow
def test_a_rollout_suite_run_prints_its_rollouts_not_a_generation_line(
        lambda_agent: LambdaFake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(LAMBDA_SUITE)]) == 0
    out = capsys.readouterr().out
    assert "rollouts for agent: 6 rollouts: 0 from the store, 6 run, 0 errors (0 out of time)" in out
    assert "generation:" not in out
    assert main(["run", str(LAMBDA_SUITE), "--json"]) == 0  # the rollouts are in the store now
    result = json.loads(capsys.readouterr().out)
    production = result["production"]["agent"]
    assert production["stage"] == "rollouts"
    assert (production["rollouts"], production["from_store"], production["ran"], production["errors"]) == (6, 6, 0, 0)
    assert production["summary"] == "rollouts for agent: 6 rollouts: 6 from the store, 0 run, 0 errors (0 out of time)"
    assert "summary" not in result["generation"]["agent"] and result["generation"]["agent"]["rollouts"] == 6
    assert len(lambda_agent.service.attempts) == 6
