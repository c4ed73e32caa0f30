"""``MultiTurnRLEvaluator``: construction errors before anything runs, the hyperparameters object, the seed's three
shapes as suites, listing runtimes and models, and evaluate() → wait() → show_results() on a real Dagster instance
and MLflow store, with the models behind the fake OpenAI server on 127.0.0.1 and a scripted local environment whose
tasks succeed a known number of times (the metrics checked against exact combinatorics)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from math import comb
from pathlib import Path

import boto3
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.agents.spec import MAX_STOPPING_CONDITION_S, RolloutSpec
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import backend, backend_names
from eval_pipeline.sdk import EvaluationExecution, LLMAsJudgeEvaluator, MultiTurnRLEvaluator
from eval_pipeline.sdk.agent_config import environment_spec
from eval_pipeline.sdk.hyperparameters import SEED_PARAMETERS, RolloutHyperparameters
from eval_pipeline.tracking import default_tracking_uri, sanitize_name
from tests import scripted_environment
from tests.fakes import FakeLLMServer

REPO = Path(__file__).resolve().parent.parent
CALCULATOR = "examples.environments.calculator:CalculatorEnvironment"
CALC_DATA = str(REPO / "examples" / "data" / "agents" / "calculator.jsonl")
COUNTING = "tests.scripted_environment:CountingEnvironment"
RUNTIME_ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/my_agent-AbC123xyz9"
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-agent"
GROUP = 4
SUCCESSES = {  # task -> model -> successful rollouts out of GROUP
    "t1": {"tuned": 4, "base": 2}, "t2": {"tuned": 3, "base": 0}, "t3": {"tuned": 2, "base": 1},
    "t4": {"tuned": 1, "base": 1}, "t5": {"tuned": 0, "base": 0},
}


def evaluator(**overrides: object) -> MultiTurnRLEvaluator:
    arguments: dict = {"model": "smollm2-135m-instruct", "dataset": CALC_DATA, "agent_config": CALCULATOR}
    return MultiTurnRLEvaluator(**(arguments | overrides))


# --- construction errors, before anything runs -------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -5, MAX_STOPPING_CONDITION_S + 1, 10**9])
def test_stopping_condition_out_of_range(eval_home: Path, value: int) -> None:
    with pytest.raises(EvalInputError, match=r"stopping_condition .* outside \(0, 259200\]") as raised:
        evaluator(stopping_condition=value)
    assert raised.value.field == "stopping_condition"
    assert not (eval_home / "executions").exists()


@pytest.mark.parametrize("value", [3600.5, "3600", True, None])
def test_stopping_condition_must_be_whole_seconds(eval_home: Path, value: object) -> None:
    with pytest.raises(ValueError, match="stopping_condition"):
        evaluator(stopping_condition=value)


def test_stopping_condition_bounds_are_inclusive_above(eval_home: Path) -> None:
    assert evaluator(stopping_condition=MAX_STOPPING_CONDITION_S).suite.rollout.stopping_condition == 259_200
    assert evaluator(stopping_condition=1).suite.rollout.stopping_condition == 1


def test_pass_k_above_group_rejected(eval_home: Path) -> None:
    ev = evaluator()
    with pytest.raises(EvalInputError, match=r"pass_k_values \[8\] exceed eval_group_size 4") as raised:
        ev.hyperparameters.pass_k_values = [1, 8]
    assert raised.value.field == "pass_k_values"
    assert ev.hyperparameters.pass_k_values == [1]  # unchanged
    with pytest.raises(EvalInputError, match="exceed eval_group_size"):
        evaluator(hyperparameters={"pass_k_values": [5]})
    ev.hyperparameters.pass_k_values = [1, 2, 4]
    with pytest.raises(EvalInputError, match=r"exceed eval_group_size 2.*after setting eval_group_size = 2"):
        ev.hyperparameters.eval_group_size = 2
    ev.hyperparameters.update(eval_group_size=2, pass_k_values=[2])  # together: fine
    assert (ev.hyperparameters.eval_group_size, ev.hyperparameters.pass_k_values) == (2, [2])


@pytest.mark.parametrize(("agent_config", "message"), [
    (42, "cannot use 42 as an agent"),
    ("two words", "cannot tell what agent 'two words' is"),
    ("arn:aws:s3:::bucket/key", "neither an AgentCore runtime ARN nor a Lambda function ARN"),
    ({"kind": "python", "nope": 1}, "Extra inputs are not permitted"),
    ({"kind": "smoke_signals"}, "environment"),
])
def test_unknown_agent_config_shape(eval_home: Path, agent_config: object, message: str) -> None:
    with pytest.raises(EvalInputError, match=message):
        evaluator(agent_config=agent_config)


@pytest.mark.parametrize(("agent_config", "field"), [
    ("arn:aws:bedrock-agentcore:us-east-1:12345:runtime/short-account", "environment.arn"),
    ("arn:aws:bedrock-agentcore:us-east-1:123456789012:agent/not-a-runtime", "environment.arn"),
    ("arn:aws:lambda:us-east-1:123456789012:layer:not-a-function", "environment.arn"),
    ("examples.environments.calculator:NoSuchEnvironment", "environment.path"),
])
def test_bad_arn_or_path_is_caught_at_construction(eval_home: Path, agent_config: str, field: str) -> None:
    with pytest.raises(EvalInputError) as raised:
        evaluator(agent_config=agent_config)
    assert raised.value.field == field


def test_bad_qualifier_and_other_inputs(eval_home: Path) -> None:
    with pytest.raises(EvalInputError, match="not an endpoint name"):
        evaluator(agent_config=RUNTIME_ARN, agent_qualifier="bad qualifier!")
    with pytest.raises(ValueError, match="needs base_model"):
        evaluator(evaluate_base_model=True)
    with pytest.raises(EvalInputError, match="reserved"):
        evaluator(tags=[{"Key": "dagster/partition", "Value": "x"}])
    with pytest.raises(EvalInputError, match="given twice"):
        evaluator(tags=[{"Key": "team", "Value": "a"}, {"Key": "team", "Value": "b"}])
    with pytest.raises(EvalInputError, match=r"temperature 1\.5 is outside the bedrock backend's range"):
        evaluator(model="amazon.nova-micro-v1:0", hyperparameters={"sampling_temperature": 1.5})


# --- agent_config shapes -----------------------------------------------------------------------------------------


def test_agent_config_shapes() -> None:
    agentcore = environment_spec(RUNTIME_ARN, "PROD")
    assert (agentcore.kind, agentcore.arn, agentcore.qualifier) == ("agentcore", RUNTIME_ARN, "PROD")
    assert environment_spec(RUNTIME_ARN).qualifier is None  # the runtime's DEFAULT endpoint
    for function in (LAMBDA_ARN, "my-agent", "my-agent:prod"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            spec = environment_spec(function)
        assert (spec.kind, spec.arn, spec.qualifier) == ("lambda", function, None)
    with pytest.warns(UserWarning, match="ignored for a lambda agent"):
        spec = environment_spec(LAMBDA_ARN, "PROD")
    assert spec.qualifier is None
    python = environment_spec(CALCULATOR)
    assert (python.kind, python.path) == ("python", CALCULATOR)
    assert environment_spec("tests:CountingEnvironment").kind == "python"  # an importable module: Python
    as_dict = environment_spec({"kind": "lambda", "function": "my-agent", "timeout_s": 5})
    assert (as_dict.kind, as_dict.function, as_dict.timeout_s) == ("lambda", "my-agent", 5.0)


# --- hyperparameters ---------------------------------------------------------------------------------------------


def test_hyperparameters_attribute_access_is_validated() -> None:
    hp = RolloutHyperparameters()
    defaults = RolloutSpec()
    assert hp.to_dict() == {name: getattr(defaults, name) for name in hp.to_dict()}
    assert list(hp.to_dict())[:6] == list(SEED_PARAMETERS)
    assert "stopping_condition" not in hp.to_dict()
    hp.eval_group_size = 8
    hp.sampling_temperature = 1  # an int is a float
    hp.top_p = 0.9
    hp.max_tokens = 64
    hp.pass_k_values = [8, 1, 4]
    hp.success_threshold = 0.5
    assert {name: hp.to_dict()[name] for name in SEED_PARAMETERS} == {
        "eval_group_size": 8, "sampling_temperature": 1.0, "top_p": 0.9, "max_tokens": 64,
        "pass_k_values": [1, 4, 8], "success_threshold": 0.5}
    assert isinstance(hp.sampling_temperature, float)
    for name, value, message in [
        ("eval_group_size", 0, "greater than or equal to 1"), ("eval_group_size", 1001, "less than or equal to 1000"),
        ("eval_group_size", 4.0, "valid integer"), ("eval_group_size", "4", "valid integer"),
        ("eval_group_size", True, "valid integer"), ("sampling_temperature", -0.1, "greater than or equal to 0"),
        ("sampling_temperature", 2.5, "less than or equal to 2"), ("sampling_temperature", "hot", "valid number"),
        ("top_p", 0.0, "greater than 0"), ("top_p", 1.01, "less than or equal to 1"),
        ("max_tokens", 0, "greater than or equal to 1"), ("max_tokens", 40_000, "less than or equal to 32768"),
        ("pass_k_values", [], "at least one k"), ("pass_k_values", [0], "positive integers"),
        ("pass_k_values", [2, 2], "duplicates"), ("pass_k_values", (1, 2), "valid list"),
        ("success_threshold", float("nan"), "finite number"), ("success_threshold", "1", "valid number"),
    ]:
        before = hp.to_dict()
        with pytest.raises(EvalInputError, match=message) as raised:
            setattr(hp, name, value)
        assert raised.value.field == name, (name, value)
        assert hp.to_dict() == before  # a rejected value changes nothing
    with pytest.raises(AttributeError, match="no hyperparameter 'group_size'; the hyperparameters are: "
                                             "eval_group_size, sampling_temperature, top_p"):
        hp.group_size = 3
    with pytest.raises(AttributeError, match="no hyperparameter 'temperature'"):
        _ = hp.temperature
    with pytest.raises(AttributeError, match="no hyperparameter 'stopping_condition'"):
        RolloutHyperparameters({"stopping_condition": 60})  # an evaluator argument of its own
    copy = hp.pass_k_values
    copy.append(99)
    assert hp.pass_k_values == [1, 4, 8]  # reads are copies


def test_get_info_derives_ranges_from_the_spec() -> None:
    hp = RolloutHyperparameters({"eval_group_size": 6})
    info = hp.get_info()
    assert list(info)[:6] == list(SEED_PARAMETERS)
    fields = RolloutSpec.model_fields
    for name, entry in info.items():
        assert set(entry) >= {"type", "default", "current", "min", "max", "description"}
        assert entry["default"] == fields[name].get_default(call_default_factory=True)
        assert entry["current"] == getattr(hp, name)
        assert entry["description"], name
        constraints = {type(m).__name__: m for m in fields[name].metadata}
        low = constraints.get("Ge") or constraints.get("Gt")
        high = constraints.get("Le") or constraints.get("Lt")
        assert entry["min"] == (getattr(low, "ge", None) if "Ge" in constraints else getattr(low, "gt", None))
        assert entry["max"] == (getattr(high, "le", None) if "Le" in constraints else getattr(high, "lt", None))
    assert (info["eval_group_size"]["type"], info["eval_group_size"]["min"], info["eval_group_size"]["max"],
            info["eval_group_size"]["current"], info["eval_group_size"]["default"]) == ("int", 1, 1000, 6, 4)
    assert (info["top_p"]["min"], info["top_p"]["exclusive_min"], info["top_p"]["max"]) == (0.0, True, 1.0)
    assert info["pass_k_values"]["max_each"] == 6 and info["pass_k_values"]["min_each"] == 1
    assert info["success_threshold"]["min"] is None and info["success_threshold"]["type"] == "float"
    assert hp.get_info("top_p") == info["top_p"]
    with pytest.raises(AttributeError):
        hp.get_info("nope")


def test_hyperparameter_changes_apply_to_the_next_evaluate(eval_home: Path) -> None:
    ev = evaluator()
    assert ev.suite.rollout.eval_group_size == 4
    ev.hyperparameters.eval_group_size = 2
    assert ev.suite.rollout.eval_group_size == 4  # the last launched (or built) suite
    assert ev._suite(ev.hyperparameters.spec(stopping_condition=ev.stopping_condition)).rollout.eval_group_size == 2


# --- the three shapes --------------------------------------------------------------------------------------------


def test_three_shapes(eval_home: Path) -> None:
    base = {"backend": "bedrock", "model": "amazon.nova-lite-v1:0"}
    tuned = {"backend": "bedrock", "model": "amazon.nova-micro-v1:0"}
    only_base = evaluator(model=base, mlflow_experiment_name="agents")
    assert only_base.shape == "base_only"
    assert [m.model for m in only_base.suite.models] == ["amazon.nova-lite-v1:0"]
    assert only_base.suite.baseline is None and only_base.suite.task == "rollout"

    only_tuned = evaluator(model=tuned, base_model=base, mlflow_experiment_name="agents")
    assert only_tuned.shape == "fine_tuned_only"
    assert [m.model for m in only_tuned.suite.models] == ["amazon.nova-micro-v1:0"]
    assert only_tuned.suite.baseline is None
    assert only_tuned.config()["base_model"] == "bedrock:amazon.nova-lite-v1:0"  # recorded, not evaluated

    both = evaluator(model=tuned, base_model=base, evaluate_base_model=True, mlflow_experiment_name="agents")
    assert both.shape == "comparison"
    assert [m.model for m in both.suite.models] == ["amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0"]
    assert both.suite.baseline == both.suite.models[0].name == both.base_model.name
    assert both.suite.mlflow_experiment == "agents"  # both runs (and the comparison's) in one experiment
    same = evaluator(model=tuned, base_model=tuned, evaluate_base_model=True)
    assert [m.name for m in same.suite.models] == ["amazon.nova-micro-v1-0-base", "amazon.nova-micro-v1-0-model"]
    assert evaluator().suite.mlflow_experiment == "eval/multi_turn_rl"


def test_listing_supported_models() -> None:
    listed = MultiTurnRLEvaluator.list_supported_models()
    assert listed[0] == "smollm2-135m-instruct"
    tool_backends = [name for name in backend_names() if backend(name).tools]
    assert [line.split(":", 1)[0] for line in listed[1:]] == tool_backends
    assert "precomputed" not in tool_backends and "bedrock" in tool_backends
    assert any(line.startswith("openai: base_url = ") for line in listed)


def test_list_bedrock_agentcore_runtimes_against_moto(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL", aws_env)
    control = boto3.client("bedrock-agentcore-control", region_name="us-east-1")
    created = {}
    for name in ("alpha", "beta"):
        reply = control.create_agent_runtime(
            agentRuntimeName=name, roleArn="arn:aws:iam::123456789012:role/agent",
            agentRuntimeArtifact={"containerConfiguration": {
                "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:latest"}},
            networkConfiguration={"networkMode": "PUBLIC"})
        created[name] = reply
    listed = MultiTurnRLEvaluator.list_bedrock_agentcore_runtimes(boto3.session.Session(region_name="us-east-1"))
    assert {(r["name"], r["runtime_id"], r["arn"]) for r in listed} == {
        (name, r["agentRuntimeId"], r["agentRuntimeArn"]) for name, r in created.items()}
    assert all(r["status"] for r in listed)
    assert MultiTurnRLEvaluator.list_bedrock_agentcore_runtimes() == listed  # the default session


# --- evaluate() end to end ---------------------------------------------------------------------------------------


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    monkeypatch.delenv("EVAL_PIPELINE_DAGSTER_URL", raising=False)
    scripted_environment.reset_counts()
    with FakeLLMServer(answer=lambda prompt, model: f"{model} says {len(prompt)}") as server:
        yield server


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps({"id": task, "prompt": f"Solve task {task}.", "successes": counts,
                                        "category": "odd" if int(task[1:]) % 2 else "even"}) + "\n"
                            for task, counts in SUCCESSES.items()), encoding="utf-8")
    return path


def expected_metrics(model: str, ks: list[int]) -> dict[str, float]:
    """Exact combinatorics over the scripted counts: pass@k = mean 1 - C(n-c,k)/C(n,k), pass^k = mean C(c,k)/C(n,k)."""
    cs = [SUCCESSES[task][model] for task in SUCCESSES]
    n, tasks = GROUP, len(cs)
    values = {"success_rate": sum(c / n for c in cs) / tasks, "mean_reward": sum(c / n for c in cs) / tasks}
    for k in ks:
        values[f"pass@{k}"] = sum(1 - comb(n - c, k) / comb(n, k) for c in cs) / tasks
        values[f"pass^{k}"] = sum(comb(c, k) / comb(n, k) for c in cs) / tasks
    return values


def test_evaluate_wait_show_results_comparison(eval_home: Path, llm: FakeLLMServer, tasks_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{llm.url}/v1"
    ev = MultiTurnRLEvaluator(
        model={"name": "tuned", "backend": "openai", "base_url": url, "model": "tuned"},
        base_model={"name": "base", "backend": "openai", "base_url": url, "model": "base"},
        evaluate_base_model=True, dataset=tasks_file, agent_config=COUNTING, stopping_condition=600,
        mlflow_experiment_name="agents-sdk", mlflow_run_name="nightly",
        tags=[{"Key": "team", "Value": "agents"}, {"Key": "ticket", "Value": "EVAL-10"}], name="mtrl_sdk",
        output_path=str(eval_home.parent / "out"))
    ev.hyperparameters.eval_group_size = 2  # changed below, before evaluate(): the last values count
    ev.hyperparameters.update(eval_group_size=GROUP, pass_k_values=[1, 2, 4], sampling_temperature=0.0,
                              max_turns=2, concurrency=4)
    execution = ev.evaluate()
    status = execution.wait(poll=0.2, timeout=600)
    assert status.overall_status == "Succeeded", status.failure_reason
    assert [s.name for s in status.step_details] == ["evaluate/tuned", "evaluate/base", "compare/base"]
    assert all(s.status == "Succeeded" for s in status.step_details)
    assert execution.id.startswith("mtrl-mtrl_sdk-") and "multi-turn-rl/execution/" in execution.arn
    assert execution.refresh() is execution and execution.status.overall_status == "Succeeded"

    items = execution.show_results(limit=10)
    printed = capsys.readouterr().out
    assert "Metrics" in printed and "Comparison with the base model" in printed and "pass@2" in printed

    # every rollout once: 5 tasks x 4 members x 2 models, each a reply the environment counted
    assert scripted_environment.counts() == {(task, model): GROUP for task in SUCCESSES for model in ("tuned", "base")}
    assert len(items) == len(SUCCESSES) * GROUP * 2
    per_task = items.groupby(["model", "sample_id"])["success"].sum().to_dict()
    assert per_task == {(model, task): float(SUCCESSES[task][model]) for task in SUCCESSES
                        for model in ("tuned", "base")}
    assert set(items["termination"]) == {"done"} and items["errors"].isna().all()

    summary = items.attrs["summary"]
    for model in ("tuned", "base"):
        expected = expected_metrics(model, [1, 2, 4])
        got = summary[summary["model"] == model].set_index("metric")["mean"].to_dict()
        for metric, value in expected.items():
            assert got[metric] == pytest.approx(value, abs=1e-12), (model, metric)
        rows = summary[(summary["model"] == model) & summary["metric"].isin(list(expected))]
        assert (rows["ci_low"] <= rows["mean"] + 1e-12).all() and (rows["mean"] <= rows["ci_high"] + 1e-12).all()

    comparison = items.attrs["comparison"].set_index("metric")
    rates = {m: [SUCCESSES[t][m] / GROUP for t in SUCCESSES] for m in ("tuned", "base")}
    paired = [a - b for a, b in zip(rates["tuned"], rates["base"], strict=True)]
    for metric in ("reward", "success"):
        row = comparison.loc[metric]
        assert (row["model"], row["baseline"]) == ("tuned", "base")
        assert row["diff"] == pytest.approx(sum(paired) / len(paired), abs=1e-12)
        assert row["n"] == len(SUCCESSES)

    # MLflow: both model runs (named <mlflow_run_name>/<model>, with the tags) and the comparison in one experiment
    client = MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("agents-sdk")
    runs = client.search_runs([experiment.experiment_id])
    by_name = {run.info.run_name: run for run in runs}
    assert {"nightly/tuned", "nightly/base"} <= set(by_name)
    for name in ("nightly/tuned", "nightly/base"):
        tags = by_name[name].data.tags
        assert (tags["team"], tags["ticket"]) == ("agents", "EVAL-10")
        model = name.split("/")[1]
        logged = by_name[name].data.metrics
        assert logged[sanitize_name("pass@2")] == pytest.approx(expected_metrics(model, [2])["pass@2"])
        assert logged[sanitize_name("pass^4")] == pytest.approx(expected_metrics(model, [4])["pass^4"])
    assert len(runs) == 3  # and the comparison's run

    # Dagster: every run of the execution carries the user's tags
    import dagster as dg

    from eval_pipeline.sdk.in_process import local_dagster

    dagster_runs = local_dagster().get_runs(filters=dg.RunsFilter(tags={"team": "agents"}))
    assert len(dagster_runs) == 3 and all(r.tags["ticket"] == "EVAL-10" for r in dagster_runs)

    listed = list(MultiTurnRLEvaluator.get_all())
    assert [e.id for e in listed] == [execution.id]
    assert list(LLMAsJudgeEvaluator.get_all()) == []  # each evaluator lists its own
    assert EvaluationExecution.get(execution.id).record["config"]["hyperparameters"]["eval_group_size"] == GROUP
    record = execution.record
    assert record["evaluator"] == "multi_turn_rl" and record["baseline"] == "base"
    assert record["config"]["shape"] == "comparison" and record["bedrock_outputs"] == {}


def test_get_all_lists_only_multi_turn_executions(eval_home: Path) -> None:
    assert list(MultiTurnRLEvaluator.get_all()) == []


@pytest.mark.slow
def test_embedded_model_calculator_quick(eval_home: Path) -> None:
    """The embedded model in the calculator environment: two tasks, two rollouts each, through the SDK."""
    ev = evaluator(limit=2, hyperparameters={"eval_group_size": 2, "pass_k_values": [1, 2], "max_tokens": 64,
                                             "max_turns": 3, "sampling_temperature": 0.7, "concurrency": 2},
                   stopping_condition=1800, name="mtrl_embedded")
    execution = ev.evaluate()
    status = execution.wait(poll=1, timeout=1800)
    assert status.overall_status == "Succeeded", status.failure_reason
    items = execution.show_results(use_rich=False)
    assert len(items) == 4 and items["errors"].isna().all()
    summary = items.attrs["summary"].set_index("metric")
    success = items.groupby("sample_id")["success"].sum()
    expected = sum(1 - comb(2 - int(c), 1) / comb(2, 1) for c in success) / len(success)
    assert summary.loc["pass@1", "mean"] == pytest.approx(expected)
    assert isinstance(items, pd.DataFrame)


def test_run_labels_carry_the_run_name_and_tags() -> None:
    from eval_pipeline.sdk.evaluation_launch import tracking_tags, user_tags
    from eval_pipeline.tracking.run_labels import MLFLOW_TAGS_TAG, run_labels

    tags = user_tags([{"Key": "team", "Value": "agents"}, {"Key": "Cost Center", "Value": 42}])
    assert tags == {"team": "agents", "Cost Center": "42"}
    assert user_tags({"team": "agents"}) == {"team": "agents"}
    carried = tracking_tags(tags, "nightly")
    assert carried["team"] == "agents"  # the Dagster run tags themselves
    labels = run_labels(carried)
    assert labels.tags == tags and labels.run_name("tuned") == "nightly/tuned"
    assert run_labels({}).run_name("tuned") is None and run_labels({}).tags == {}
    assert run_labels({MLFLOW_TAGS_TAG: "not json"}).tags == {}
    assert run_labels({MLFLOW_TAGS_TAG: "[1, 2]"}).tags == {}
    with pytest.raises(EvalInputError, match="Key"):
        user_tags([{"Value": "no key"}])
