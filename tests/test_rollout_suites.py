"""Rollout suites through the real pipeline: the suite files of ``tests/fixtures/rollout_suites`` run by
``run_suite`` / the CLI on a real Dagster instance, with real Parquet and a real MLflow store under ``eval_home``.

Policy mode: the model under test (an OpenAI-compatible server, the fake of ``tests/fakes/llm_server.py`` scripted
to call the calculator tool, then answer) acts in the calculator environment. Service mode: an AgentCore runtime
and a Lambda function (``tests/fakes``, through the real boto3 clients) are the agents. Every number is checked
against an independent computation from the Parquet tables.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy import stats

from eval_pipeline.agents.user_simulator import STOP_MARKER
from eval_pipeline.cli import main
from eval_pipeline.data.schemas import ROLLOUTS
from eval_pipeline.execution import SuiteRun, run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suite_definitions import build_definitions, default_resources
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes import FakeLLMServer
from tests.fakes.agentcore import AgentCoreFake, Reply
from tests.fakes.lambda_fake import LambdaFake
from tests.fakes.service_base import Invocation

REPO = Path(__file__).resolve().parent.parent
SUITES = REPO / "tests" / "fixtures" / "rollout_suites" / "evals"
CALCULATOR = REPO / "examples" / "data" / "agents" / "calculator.jsonl"
ARITHMETIC = REPO / "tests" / "fixtures" / "rollout_suites" / "data" / "arithmetic_refs.jsonl"


# -- independent references ----------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 − C(n−c, k) / C(n, k), in exact integers."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """C(c, k) / C(n, k): all of k rollouts drawn without replacement succeed."""
    return math.comb(c, k) / math.comb(n, k)


def reference_metrics(rollouts: pd.DataFrame, ks: list[int]) -> dict[str, float]:
    """mean_reward, success_rate, pass@k and pass^k from the rollouts table, by hand (no errored rows here)."""
    assert rollouts["error"].isna().all()
    per_task = rollouts.groupby("sample_id").agg(n=("success", "size"), c=("success", "sum"),
                                                 reward=("reward", "mean"))
    out = {"mean_reward": float(per_task["reward"].mean()),
           "success_rate": float((per_task["c"] / per_task["n"]).mean())}
    groups = [(int(n), int(c)) for n, c in zip(per_task["n"], per_task["c"], strict=True)]
    for k in ks:
        out[f"pass@{k}"] = float(np.mean([pass_at_k(n, c, k) for n, c in groups]))
        out[f"pass^{k}"] = float(np.mean([pass_hat_k(n, c, k) for n, c in groups]))
    return out


def overall(metrics: pd.DataFrame, model: str | None = None) -> dict[str, float]:
    rows = metrics[metrics["breakdown_key"].isna()]
    if model is not None:
        rows = rows[rows["model"] == model]
    return dict(zip(rows["metric"], rows["value"].astype(float), strict=True))


# -- fakes -----------------------------------------------------------------------------------------------------------


class CountedAnswers:
    """The fake model's final answers: for each task, the first ``correct[prompt]`` answers are its number, later
    ones that number + 1 (wrong), so exactly that many of a task's rollouts succeed whatever the thread order."""

    def __init__(self, expected: dict[str, int], correct: dict[str, int]) -> None:
        self.expected, self.correct = expected, correct
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, prompt: str, model: str) -> str:
        with self.lock:
            self.calls[prompt] += 1
            right = self.calls[prompt] <= self.correct[prompt]
        return f"The answer is {self.expected[prompt] + (0 if right else 1)}."


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def rollouts_pool(suite: Suite) -> str | None:
    """The Dagster pool of the suite's rollouts asset, as the code location defines it."""
    definitions = build_definitions([suite], default_resources())
    return definitions.resolve_assets_def(dg.AssetKey([suite.suite, "rollouts"])).op.pool


def traces_of(run_id: str) -> list[Any]:
    """The MLflow traces logged in one run, read by a client of the pipeline's store (``mlflow.set_tracking_uri``
    would also set ``MLFLOW_TRACKING_URI`` for the rest of the process)."""
    client = MlflowClient(default_tracking_uri())
    experiment_id = client.get_run(run_id).info.experiment_id
    return list(client.search_traces(locations=[experiment_id], run_id=run_id, max_results=1000))


# -- policy mode -----------------------------------------------------------------------------------------------------


def test_policy_rollouts_end_to_end_with_metrics_traces_pool_and_resume(eval_home: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = read_jsonl(CALCULATOR, limit=4)
    prompts = [t["prompt"] for t in tasks]
    expected = {t["prompt"]: int(t["expected"]) for t in tasks}
    correct = dict(zip(prompts, [3, 2, 1, 0], strict=True))  # successes per task out of eval_group_size 3
    calls = {p: [{"name": "calculate", "arguments": {"expression": re.match(r"What is (.+?)\?", p)[1]}}]
             for p in prompts}
    answers = CountedAnswers(expected, correct)
    with FakeLLMServer(answer=answers, tool_calls=calls, known_models={"served-model"}) as fake:
        monkeypatch.setenv("FAKE_LLM_URL", fake.url)
        suite = load_suite(SUITES / "calculator_policy.yaml")
        result = run_suite(suite, local_instance())
        assert result.success, result.models[0].error
        [run] = result.models
        sent = fake.requests_total

        rollouts = pd.read_parquet(run.outputs["rollouts"])
        assert list(rollouts.columns) == ROLLOUTS.names
        assert len(rollouts) == 4 * 3 and rollouts["rollout_id"].is_unique
        assert sorted(Counter(rollouts["sample_id"]).values()) == [3, 3, 3, 3]
        assert sorted(rollouts["sample_index"].unique().tolist()) == [0, 1, 2]
        assert (rollouts["model"] == "policy").all() and rollouts["error"].isna().all()
        assert (rollouts["environment"] == "python:examples.environments.calculator:CalculatorEnvironment").all()
        # every rollout: one tool call answered with the right number, then the final answer (2 model turns)
        assert (rollouts["num_turns"] == 2).all() and (rollouts["termination"] == "done").all()
        for row in rollouts.itertuples():
            messages = json.loads(row.messages)
            # the environment's worked example comes first (its call id is call_example), then the rollout's own
            [tool_message] = [m for m in messages if m["role"] == "tool" and m["tool_call_id"] != "call_example"]
            task = next(t for t in tasks if t["id"] == row.sample_id)
            assert tool_message["content"] == str(task["expected"])
            assert row.reward == (1.0 if str(task["expected"]) in messages[-1]["content"] else 0.0)
        assert (rollouts["success"] == (rollouts["reward"] >= 1.0)).all()
        successes = rollouts.groupby("sample_id")["success"].sum().to_dict()
        assert successes == {t["id"]: correct[t["prompt"]] for t in tasks}
        assert sent == 4 * 3 * 2  # two model calls per rollout, none repeated
        assert (rollouts["tokens_in"] > 0).all() and (rollouts["tokens_out"] > 0).all()

        # metrics: the table, against the Parquet by hand and against the analytic values of c = 3, 2, 1, 0
        got, ref = overall(run.metrics), reference_metrics(rollouts, [1, 2, 3])
        for name, value in ref.items():
            assert got[name] == pytest.approx(value, abs=1e-12), name
        assert got["pass@1"] == pytest.approx(0.5) and got["pass^1"] == pytest.approx(0.5)
        assert got["pass@2"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
        assert got["pass^2"] == pytest.approx((1 + 1 / 3 + 0 + 0) / 4)
        assert got["pass@3"] == pytest.approx(3 / 4) and got["pass^3"] == pytest.approx(1 / 4)
        assert not [name for name in got if name.startswith("errors.")]  # no source caused an error
        assert run.generation["rollouts"] == 12 and run.generation["ran"] == 12
        assert run.generation["from_store"] == 0

        # scores: a reward row and a success row per rollout
        scores = pd.read_parquet(run.outputs["scores"])
        assert Counter(scores["scorer"]) == {"reward": 12, "success": 12}

        # MLflow: one trace per rollout with its model and tool spans
        traces = traces_of(run.mlflow_run_id)
        assert sorted(t.info.tags["rollout_id"] for t in traces) == sorted(rollouts["rollout_id"])
        for trace in traces:
            children = sorted((s for s in trace.data.spans if s.parent_id is not None), key=lambda s: s.start_time_ns)
            assert [(s.span_type, s.name if s.span_type == "TOOL" else "") for s in children] == [
                ("CHAT_MODEL", ""), ("TOOL", "calculate"), ("CHAT_MODEL", "")]
            task = next(t for t in tasks if t["id"] == trace.info.tags["sample_id"])
            assert str(task["expected"]) in json.dumps(children[1].outputs)  # the tool's result

        # Dagster: the rollouts asset runs in the pool of its environment kind
        assert rollouts_pool(suite) == "rollouts-python"

        # a re-run takes every rollout from the store and sends nothing
        again = run_suite(suite, local_instance())
        assert again.success, again.models[0].error
        assert again.models[0].generation["from_store"] == 12 and again.models[0].generation["ran"] == 0
        assert fake.requests_total == sent
        assert overall(again.models[0].metrics) == pytest.approx(got, nan_ok=True)

        # without the rollout store (a killed run's lost work), the rollouts run again and every model call they
        # make comes from the request cache: the same rows, nothing sent (the fake would now answer differently)
        (eval_home / "cache" / "rollouts.sqlite").unlink()
        cached = run_suite(suite, local_instance())
        assert cached.models[0].generation["ran"] == 12 and fake.requests_total == sent
        rerun = pd.read_parquet(cached.models[0].outputs["rollouts"])
        assert rerun["cached"].all() and not rollouts["cached"].any()
        columns = ["rollout_id", "reward", "success", "messages", "num_turns", "termination"]
        pd.testing.assert_frame_equal(rerun[columns].sort_values("rollout_id", ignore_index=True),
                                      rollouts[columns].sort_values("rollout_id", ignore_index=True))


# -- service mode ----------------------------------------------------------------------------------------------------


def test_agentcore_suite_rewarded_by_the_verifier_with_the_model_in_the_payload(eval_home: Path,
                                                                              agentcore: AgentCoreFake) -> None:
    tasks = {t["prompt"]: t for t in read_jsonl(ARITHMETIC)}
    seen: list[Invocation] = []
    lock = threading.Lock()

    def agent(invocation: Invocation) -> Any:
        """Right on even-numbered tasks, off by one on odd ones: rewards 1 and 0 by the verifier."""
        with lock:
            seen.append(invocation)
        task = tasks[invocation.payload["prompt"]]
        value = int(task["reference"]) + (0 if task["category"] == "even" else 1)
        return {"response": f"The result is {value}."}

    agentcore.agent = agent
    suite = load_suite(SUITES / "agentcore_verifier.yaml")
    assert rollouts_pool(suite) == "rollouts-agentcore"
    result = run_suite(suite, local_instance())
    assert result.success, result.models[0].error
    [run] = result.models
    rollouts = pd.read_parquet(run.outputs["rollouts"])
    assert list(rollouts.columns) == ROLLOUTS.names and len(rollouts) == 6 * 2
    assert rollouts["error"].isna().all()
    assert (rollouts["environment"] == "agentcore:arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/"
                                       "calc_agent-AbC123xyz9").all()

    # the verifier's reward: numeric_match of the agent's last reply against the reference, by hand
    for row in rollouts.itertuples():
        last = json.loads(row.messages)[-1]
        assert last["role"] == "assistant"
        reference = next(t["reference"] for t in tasks.values() if t["id"] == row.sample_id)
        number = re.findall(r"-?\d+", last["content"])[-1]
        assert row.reward == (1.0 if number == reference else 0.0)
        assert json.loads(row.turns)[-1]["step"]["info"]["verifier"] == "numeric_match"
    assert rollouts.groupby("sample_id")["reward"].mean().to_dict() == {
        t["id"]: (1.0 if t["category"] == "even" else 0.0) for t in tasks.values()}

    # the wire: one invocation per rollout, each its own session of 33+ characters, the model named in the payload
    assert len(seen) == 12 and all(inv.payload["model"] == "my-org/agent-model-v1" for inv in seen)
    sessions = [inv.session_id for inv in seen]
    assert len(set(sessions)) == 12 and all(s is not None and len(s) >= 33 for s in sessions)
    assert {inv.qualifier for inv in seen} == {"DEFAULT"}

    got, ref = overall(run.metrics), reference_metrics(rollouts, [1, 2])
    for name, value in ref.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert got["mean_reward"] == 0.5 and got["pass@2"] == 0.5 and got["pass^2"] == 0.5


def test_a_lambda_agent_that_raises_gives_agent_error_rows_and_fails_the_gate(
        eval_home: Path, lambda_fake: LambdaFake, capsys: pytest.CaptureFixture[str]) -> None:
    def handler(invocation: Invocation) -> Any:
        raise RuntimeError(f"the agent crashed on {invocation.payload['task_id']}")

    lambda_fake.handler = handler
    suite_path = SUITES / "lambda_agent.yaml"
    assert main(["run", str(suite_path), "--json"]) == 1
    captured = capsys.readouterr()
    assert "error_rate" in captured.out + captured.err
    assert "6 of 6 rollouts failed" in captured.out + captured.err

    rollouts = pd.read_parquet(Path(eval_home) / "outputs" / "lambda_agent" / "rollouts" / "agent.parquet")
    assert len(rollouts) == 3 * 2
    assert (rollouts["error_source"] == "agent").all() and (rollouts["termination"] == "error").all()
    assert rollouts["reward"].isna().all() and rollouts["success"].isna().all()
    for row in rollouts.itertuples():
        assert f"RuntimeError: the agent crashed on {row.sample_id}" in row.error
    # a function error is the agent's answer, not a transient fault: one invocation per rollout, no retries
    assert len(lambda_fake.service.attempts) == 6

    metrics = pd.read_parquet(Path(eval_home) / "outputs" / "lambda_agent" / "metrics" / "agent.parquet")
    got = overall(metrics)
    assert {name: value for name, value in got.items() if name.startswith("errors.")} == {"errors.agent": 6.0}
    assert math.isnan(got["mean_reward"])

    # errored rollouts are not kept: once the agent is fixed, a re-run runs them again and passes the gate
    lambda_fake.handler = lambda invocation: {"response": "I think it is 0."}
    assert main(["run", str(suite_path), "--json"]) == 0
    capsys.readouterr()
    assert len(lambda_fake.service.attempts) == 12
    rollouts = pd.read_parquet(Path(eval_home) / "outputs" / "lambda_agent" / "rollouts" / "agent.parquet")
    assert rollouts["error"].isna().all()
    assert rollouts["reward"].tolist() == [0.0] * 6  # no reference of this dataset is 0


# -- base vs fine-tuned ----------------------------------------------------------------------------------------------


def reference_comparison(frames: dict[str, pd.DataFrame], column: str, baseline: str,
                         model: str) -> dict[str, float]:
    """Per task mean of ``column`` over its rollouts, paired on tasks; the paired t-test and its 95% interval."""
    per_task = {name: frame.groupby("sample_id")[column].mean().astype(float) for name, frame in frames.items()}
    paired = pd.concat({"x": per_task[model], "y": per_task[baseline]}, axis=1).dropna()
    diffs = (paired["x"] - paired["y"]).to_numpy()
    test = stats.ttest_rel(paired["x"], paired["y"])
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs))
    return {"n": len(diffs), "model_value": paired["x"].mean(), "baseline_value": paired["y"].mean(),
            "diff": diffs.mean(), "ci_low": diffs.mean() - half, "ci_high": diffs.mean() + half,
            "p_value": float(test.pvalue)}


def test_base_and_fine_tuned_side_by_side_with_the_paired_comparison(eval_home: Path,
                                                                    agentcore: AgentCoreFake) -> None:
    tasks = {t["prompt"]: t for t in read_jsonl(ARITHMETIC)}
    # right answers per (model, task) out of 2 rollouts: the tuned model is better on most tasks
    right = {"my-org/base-model": [1, 0, 0, 1, 2, 0], "my-org/tuned-model": [2, 1, 2, 1, 2, 2]}
    counts: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def agent(invocation: Invocation) -> Any:
        task, model = tasks[invocation.payload["prompt"]], invocation.payload["model"]
        with lock:
            counts[(model, task["id"])] += 1
            ok = counts[(model, task["id"])] <= right[model][int(task["id"].split("-")[1])]
        return {"response": str(int(task["reference"]) + (0 if ok else 7))}

    agentcore.agent = agent
    suite = load_suite(SUITES / "base_vs_tuned.yaml")
    result: SuiteRun = run_suite(suite, local_instance())
    assert result.success, [m.error for m in result.models]
    assert result.comparison is not None and result.comparison.success, result.comparison
    frames = {m.model: pd.read_parquet(m.outputs["rollouts"]) for m in result.models}
    assert {name: int(frame["success"].sum()) for name, frame in frames.items()} == {"base": 4, "tuned": 10}

    # both in one MLflow experiment
    client = MlflowClient(default_tracking_uri())
    experiments = {client.get_run(m.mlflow_run_id).info.experiment_id for m in result.models}
    assert len(experiments) == 1

    comparison = pd.read_parquet(result.comparison.outputs["comparison"])
    assert set(comparison["metric"]) >= {"reward", "success"}
    for metric, column in (("reward", "reward"), ("success", "success")):
        [row] = comparison[(comparison["metric"] == metric) & (comparison["model"] == "tuned")].to_dict("records")
        assert row["baseline"] == "base" and row["test"] == "paired_t"
        ref = reference_comparison(frames, column, "base", "tuned")
        for key, value in ref.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (metric, key)
    per_task_diff = np.array(right["my-org/tuned-model"]) / 2 - np.array(right["my-org/base-model"]) / 2
    [reward_row] = comparison[comparison["metric"] == "reward"].to_dict("records")
    assert reward_row["diff"] == pytest.approx(per_task_diff.mean())


# -- the agent quickstart on the embedded model ----------------------------------------------------------------------


@pytest.mark.slow
def test_agent_quickstart_on_the_embedded_model(eval_home: Path, tmp_path: Path) -> None:
    """evals/agent_quickstart.yaml, smaller (4 tasks × 2 rollouts): the run succeeds and its rows and metrics agree
    (no claim on the model's skill)."""
    spec = yaml.safe_load((REPO / "evals" / "agent_quickstart.yaml").read_text())
    spec["dataset"] = {"uri": str(CALCULATOR), "limit": 4}
    spec["rollout"] |= {"eval_group_size": 2, "pass_k_values": [1, 2]}
    path = tmp_path / "project" / "evals" / "agent_quickstart.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(spec))
    result = run_suite(load_suite(path), local_instance())
    assert result.success, result.models[0].error
    [run] = result.models
    rollouts = pd.read_parquet(run.outputs["rollouts"])
    assert list(rollouts.columns) == ROLLOUTS.names and len(rollouts) == 4 * 2
    assert rollouts["error"].isna().all() and (rollouts["num_turns"] <= 3).all()
    assert set(rollouts["termination"]) <= {"done", "max_turns"}
    assert (rollouts["success"] == (rollouts["reward"] >= 1.0)).all()
    got, ref = overall(run.metrics), reference_metrics(rollouts, [1, 2])
    for name, value in ref.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert got["pass^2"] <= got["pass@1"] <= got["pass@2"]
    assert len(traces_of(run.mlflow_run_id)) == 8


def test_a_conversation_with_a_simulated_user_is_rewarded_by_the_verifier_whoever_ends_it(
        eval_home: Path, agentcore: AgentCoreFake, monkeypatch: pytest.MonkeyPatch) -> None:
    """On ``agent_ends`` tasks the runtime answers (as SSE) and says it is done; on ``user_ends`` tasks it answers
    and the simulated user ends the conversation. Either way the verifier scores the agent's last reply."""
    tasks = {t["id"]: t for t in read_jsonl(REPO / "tests" / "fixtures" / "rollout_suites" / "data" /
                                           "conversation_refs.jsonl")}
    sessions: Counter[str] = Counter()

    def agent(invocation: Invocation) -> Any:
        task = tasks[invocation.payload["task_id"]]
        sessions[invocation.session_id] += 1
        if task["category"] == "agent_ends":
            return Reply([{"response": "It is "}, {"response": f"{task['reference']}."}, {"done": True}], "sse")
        return {"response": f"That makes {task['reference']}."}

    agentcore.agent = agent
    with FakeLLMServer(answer=lambda prompt, model: f"Thanks, goodbye. {STOP_MARKER}") as fake:
        monkeypatch.setenv("FAKE_LLM_URL", fake.url)
        result = run_suite(load_suite(SUITES / "agentcore_conversation.yaml"), local_instance())
        user_requests = fake.requests_total
    assert result.success, result.models[0].error
    rollouts = pd.read_parquet(result.models[0].outputs["rollouts"])
    assert len(rollouts) == 8 and rollouts["error"].isna().all(), rollouts["error"].tolist()
    assert (rollouts["reward"] == 1.0).all() and (rollouts["num_turns"] == 1).all()
    ends = rollouts["sample_id"].map(lambda sample: tasks[sample]["category"])
    asked_user = rollouts["turns"].map(lambda turns: any("user" in turn for turn in json.loads(turns)))
    assert (asked_user == (ends == "user_ends")).all()
    assert user_requests == int((ends == "user_ends").sum())  # the simulated user spoke once in each of those
    assert sorted(sessions.values()) == [1] * 8  # one turn, one session per rollout
