"""Custom trace evaluators in ``create_evaluator``'s shape: llmAsAJudge (numerical and categorical scales, the
placeholders of each level, a Bedrock or self-hosted judge model) and code-based (a Python callable, a Lambda
through boto3 against the fake Lambda endpoint), with error rows for failing or malformed code evaluators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backends import build_remote_sampler
from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.traces.evaluation import JudgeSetup, run_evaluations
from eval_pipeline.traces.evaluators.base import EvaluationResult, JudgeAsk, Level
from eval_pipeline.traces.evaluators.custom import CodeEvaluator, custom_evaluator
from eval_pipeline.traces.ground_truth import ExpectedTurn, GroundTruth, SessionMetadata
from eval_pipeline.traces.request import CustomEvaluatorShape
from tests.fakes.judge import ModelRouter, blocks, scripted_judge
from tests.fakes.lambda_fake import LambdaFake
from tests.fakes.llm_server import FakeLLMServer
from tests.trace_judge_helpers import SID, T1, T2, judge_sampler, run_asks, two_turn_session

BEDROCK_JUDGE = "anthropic.claude-judge-v1:0"
NUMERICAL = [{"value": 1, "label": "Poor", "definition": "Wrong or useless."},
             {"value": 3, "label": "Fair", "definition": "Usable with gaps."},
             {"value": 4, "label": "Good", "definition": "Right and usable."},
             {"value": 5, "label": "Excellent", "definition": "Right, complete and well put."}]
CATEGORICAL = [{"label": "On brand", "definition": "Friendly and precise."},
               {"label": "Neutral", "definition": "Neither."},
               {"label": "Off brand", "definition": "Curt or vague."}]


def shape(level: str, config: dict[str, Any], name: str = "domain_accuracy") -> CustomEvaluatorShape:
    return CustomEvaluatorShape(evaluatorName=name, level=Level(level), evaluatorConfig=config)


def llm(instructions: str, scale: dict[str, Any], model: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"instructions": instructions, "ratingScale": scale}
    if model is not None:
        config["modelConfig"] = model
    return {"llmAsAJudge": config}


def bedrock_model(max_tokens: int = 300, temperature: float = 0.0) -> dict[str, Any]:
    return {"bedrockEvaluatorModelConfig": {"modelId": BEDROCK_JUDGE, "inferenceConfig": {
        "maxTokens": max_tokens, "temperature": temperature, "topP": 0.9}}}


@pytest.fixture
def aws_creds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)


def test_numerical_scale_with_a_bedrock_judge_gives_raw_value_and_normalized_score(
        aws_creds: None, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluator = custom_evaluator("domain_accuracy-abc1234567", shape("TRACE", llm(
        "Compare {assistant_turn} with {expected_response}, given {context}.", {"numerical": NUMERICAL},
        bedrock_model())))
    assert evaluator.judged and evaluator.reads == {"expectedResponse"}

    def rule(fields: dict[str, str], _prompt: str) -> str:
        return "Good" if fields["expected_response"].lower() in fields["assistant_turn"].lower() else "Poor"

    router = ModelRouter({BEDROCK_JUDGE: scripted_judge(rule), "judge": scripted_judge(lambda f, p: "Poor")})
    truth = GroundTruth(expected_tool_names=("get_weather",),
                        turns=(ExpectedTurn(None, "sunny and 24C"), ExpectedTurn(None, "at noon")))
    with FakeLLMServer(answer=router, known_models={BEDROCK_JUDGE, "judge"}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        asks = evaluator.plan(two_turn_session(), truth)
        assert all(isinstance(a, JudgeAsk) for a in asks)
        ask = asks[0]
        assert ask.model is not None and (ask.model.backend, ask.model.model) == ("bedrock", BEDROCK_JUDGE)  # type: ignore[union-attr]
        assert (ask.max_tokens, ask.temperature, ask.extra["top_p"]) == (300, 0.0, 0.9)  # type: ignore[union-attr]
        setup = JudgeSetup(sampler=judge_sampler(server.url), params=GenerationParams(max_tokens=64),  # type: ignore[arg-type]
                           label="openai:judge", sampler_for=build_remote_sampler)
        run = run_evaluations([two_turn_session()], {SID: SessionMetadata(SID, ground_truth=truth)}, [evaluator],
                              judge=setup)
    frame = run.frame
    assert list(frame["label"]) == ["Good", "Poor"]
    assert list(frame["value"]) == [4.0, 1.0]
    assert list(frame["score"]) == [(4 - 1) / (5 - 1), 0.0]
    assert list(frame["trace_id"]) == [T1, T2]
    assert list(frame["judge_model"]) == [f"bedrock:{BEDROCK_JUDGE}"] * 2
    assert json.loads(frame["ignored_reference_fields"][0]) == ["expectedTrajectory"]
    assert router.calls == {BEDROCK_JUDGE: 2}


def test_categorical_scale_scores_by_position_with_a_self_hosted_judge() -> None:
    evaluator = custom_evaluator("brand-1", shape("SESSION", llm(
        "Is the agent's tone on brand across {context}?", {"categorical": CATEGORICAL},
        {"model": {"backend": "openai", "model": "house-judge", "base_url": "http://127.0.0.1:1/v1"}})))
    [ask] = evaluator.plan(two_turn_session(), GroundTruth())
    assert isinstance(ask, JudgeAsk) and ask.model is not None and ask.model.backend == "openai"
    assert set(blocks(ask.messages[-1]["content"])) == {"context"}
    assert "- Neutral: Neither." in ask.messages[-1]["content"]
    router = ModelRouter({"house-judge": scripted_judge(lambda f, p: "Neutral")})
    with FakeLLMServer(answer=router) as server:
        [result] = run_asks([ask], lambda _a: judge_sampler(server.url, "house-judge"))
    assert (result.label, result.value, result.score) == ("Neutral", 0.5, 0.5)
    assert [lvl.definition for lvl in ask.metric.rating_scale] == ["On brand", "Neutral", "Off brand"]
    assert [ask.metric.score(lvl) for lvl in ask.metric.rating_scale] == [1.0, 0.5, 0.0]


def test_tool_call_placeholders_and_the_tool_call_alias() -> None:
    evaluator = custom_evaluator("args-1", shape("TOOL_CALL", llm(
        "Given {available_tools} and {context}, is {tool_call} safe?", {"categorical": CATEGORICAL[::2]})))
    asks = evaluator.plan(two_turn_session(), GroundTruth())
    assert len(asks) == 3
    fields = blocks(asks[1].messages[-1]["content"])  # type: ignore[union-attr]
    assert set(fields) == {"available_tools", "context", "tool_call"}
    assert fields["tool_call"] == 'Tool: search_restaurants\nArguments: {"city": "Lyon"}'


@pytest.mark.parametrize(("level", "config", "field", "message"), [
    ("TRACE", llm("Rate {assistant_turn} against {foo}.", {"numerical": NUMERICAL}),
     "evaluatorConfig.llmAsAJudge.instructions", "{foo} is unknown placeholder"),
    ("SESSION", llm("Rate {assistant_turn}.", {"numerical": NUMERICAL}),
     "evaluatorConfig.llmAsAJudge.instructions", "{assistant_turn} is not a SESSION-level placeholder"),
    ("TOOL_CALL", llm("Rate {expected_response} of {tool_turn}.", {"numerical": NUMERICAL}),
     "evaluatorConfig.llmAsAJudge.instructions", "not a TOOL_CALL-level placeholder"),
    ("TRACE", llm("Rate the reply.", {"numerical": NUMERICAL}),
     "evaluatorConfig.llmAsAJudge.instructions", "at least one placeholder"),
    ("TRACE", llm("Rate {assistant_turn}.", {"numerical": []}),
     "evaluatorConfig.llmAsAJudge.ratingScale.numerical", "empty"),
    ("TRACE", llm("Rate {assistant_turn}.", {"categorical": [{"label": "A"}, {"label": "a "}]}),
     "evaluatorConfig.llmAsAJudge.ratingScale.categorical[1].label", "repeated"),
    ("TRACE", llm("Rate {assistant_turn}.", {"categorical": [{"label": ""}]}),
     "evaluatorConfig.llmAsAJudge.ratingScale.categorical[0].label", "non-empty"),
    ("TRACE", llm("Rate {assistant_turn}.", {"numerical": [{"label": "A", "value": "high"}]}),
     "evaluatorConfig.llmAsAJudge.ratingScale.numerical[0].value", "finite number"),
    ("TRACE", llm("Rate {assistant_turn}.", {"numerical": NUMERICAL, "categorical": CATEGORICAL}),
     "evaluatorConfig.llmAsAJudge.ratingScale", "exactly one"),
    ("TRACE", llm("Rate {assistant_turn}.", {"numerical": NUMERICAL}, {"bedrockEvaluatorModelConfig": {}}),
     "evaluatorConfig.llmAsAJudge.modelConfig.bedrockEvaluatorModelConfig.modelId", "required"),
    ("TRACE", {"codeBased": {"python": "no_such_module_xyz:evaluate"}},
     "evaluatorConfig.codeBased.python", "cannot load"),
    ("TRACE", {"codeBased": {"lambdaConfig": {"lambdaArn": "arn:aws:lambda:us-east-1:1:function:f",
                                              "lambdaTimeoutInSeconds": 900}}},
     "evaluatorConfig.codeBased.lambdaConfig.lambdaTimeoutInSeconds", "[1, 300]"),
    ("TRACE", {"llmAsAJudge": {}, "codeBased": {}}, "evaluatorConfig", "exactly one"),
])
def test_bad_configurations_name_the_field(level: str, config: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        custom_evaluator("bad-1", shape(level, config))
    assert caught.value.field == field and message in str(caught.value)


def test_missing_ground_truth_for_a_custom_placeholder_is_an_error_row() -> None:
    evaluator = custom_evaluator("gsr-1", shape("SESSION", llm(
        "Does {context} satisfy {assertions} and follow {expected_tool_trajectory}?", {"categorical": CATEGORICAL})))
    assert evaluator.reads == {"assertions", "expectedTrajectory"}
    [row] = evaluator.plan(two_turn_session(), GroundTruth(assertions=("x",)))
    assert isinstance(row, EvaluationResult) and row.error_code == "MissingGroundTruth" and row.value is None
    assert "expectedTrajectory" in (row.error or "")
    [ask] = evaluator.plan(two_turn_session(), GroundTruth(assertions=("A table is booked",),
                                                           expected_tool_names=("get_weather", "book_table")))
    fields = blocks(ask.messages[-1]["content"])  # type: ignore[union-attr]
    assert fields["assertions"] == "1. A table is booked" and fields["expected_tool_trajectory"] == \
        "get_weather, book_table"


CODE = '''
def evaluate(event):
    calls = sum(len(t["toolCalls"]) for t in event["evaluationInput"]["session"]["turns"])
    spans = event["evaluationInput"]["sessionSpans"]
    refs = event["evaluationReferenceInputs"]
    expected = refs[0]["expectedResponse"]["text"] if refs else None
    turn = next(t for t in event["evaluationInput"]["session"]["turns"]
                if t["traceId"] == event["evaluationTarget"]["traceIds"][0])
    ok = expected is not None and expected in turn["response"]
    return {"label": "PASS" if ok else "FAIL", "value": 1.0 if ok else 0.0,
            "explanation": f"{calls} calls, {len(spans)} spans, level {event['evaluationLevel']}"}

def raises(event):
    raise KeyError("sessionSpans")

def malformed(event):
    return {"value": 0.5}

def out_of_range(event):
    return {"label": "steps", "value": 7}

def reports_error(event):
    return {"errorCode": "VALIDATION_FAILED", "errorMessage": "no expected response"}
'''


def python_evaluator(tmp_path: Path, function: str, level: str = "TRACE") -> CodeEvaluator:
    (tmp_path / "evals").mkdir(exist_ok=True)
    (tmp_path / "evals" / "checks.py").write_text(CODE)
    evaluator = custom_evaluator(f"code-{function}", shape(level, {"codeBased": {
        "python": f"evals/checks.py:{function}"}}, name=f"code_{function}"), root=tmp_path)
    assert isinstance(evaluator, CodeEvaluator) and not evaluator.judged
    return evaluator


def test_python_code_evaluator_gets_the_service_event_and_gives_results(tmp_path: Path) -> None:
    evaluator = python_evaluator(tmp_path, "evaluate")
    truth = GroundTruth(assertions=("x",), turns=(ExpectedTurn(None, "sunny and 24C"),
                                                  ExpectedTurn(None, "at noon")))
    results = evaluator.plan(two_turn_session(), truth)
    assert [(r.target.trace_id, r.label, r.value, r.score) for r in results] == [  # type: ignore[union-attr]
        (T1, "PASS", 1.0, 1.0), (T2, "FAIL", 0.0, 0.0)]
    assert results[0].explanation == "3 calls, 5 spans, level TRACE"  # type: ignore[union-attr]
    assert results[0].ignored_reference_fields == ("assertions",)


@pytest.mark.parametrize(("function", "code", "reason"), [
    ("raises", "EvaluatorFailed", "KeyError: 'sessionSpans'"),
    ("malformed", "EvaluatorFailed", "malformed result (no label)"),
    ("reports_error", "VALIDATION_FAILED", "no expected response"),
])
def test_failing_code_evaluators_give_error_rows(tmp_path: Path, function: str, code: str, reason: str) -> None:
    results = python_evaluator(tmp_path, function, "SESSION").plan(two_turn_session(), GroundTruth())
    [row] = results
    assert isinstance(row, EvaluationResult) and row.value is None and row.score is None and row.label is None
    assert row.error_code == code and reason in (row.error or "")


def test_code_value_outside_zero_one_has_no_score(tmp_path: Path) -> None:
    [row] = python_evaluator(tmp_path, "out_of_range", "SESSION").plan(two_turn_session(), GroundTruth())
    assert (row.value, row.score, row.label, row.error) == (7.0, None, "steps", None)  # type: ignore[union-attr]


def test_lambda_code_evaluator_through_boto3(aws_creds: None, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:tool-checker"

    def handler(invocation: Any) -> Any:
        event = invocation.payload
        if event["evaluationTarget"]["spanIds"] == ["c3"]:
            raise ValueError("cannot judge bookings")
        return {"label": "OK", "value": 1.0, "explanation": event["evaluationTarget"]["spanIds"][0]}

    evaluator = custom_evaluator("tool-checker-1", shape("TOOL_CALL", {"codeBased": {"lambdaConfig": {
        "lambdaArn": arn, "lambdaTimeoutInSeconds": 30}}}, name="tool_checker"))
    with LambdaFake(handler) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", fake.url)
        results = evaluator.plan(two_turn_session(), GroundTruth(expected_tool_names=("get_weather",)))
        invocations = list(fake.service.invocations)
    assert [(r.target.span_id, r.label, r.value, r.explanation, r.error_code)  # type: ignore[union-attr]
            for r in results[:2]] == [("c1", "OK", 1.0, "c1", None), ("c2", "OK", 1.0, "c2", None)]
    failed = results[2]
    assert isinstance(failed, EvaluationResult) and failed.value is None and failed.error_code == "EvaluatorFailed"
    assert "Unhandled" in (failed.error or "") and "ValueError: cannot judge bookings" in (failed.error or "")
    assert [inv.target for inv in invocations] == [arn] * 3
    event = invocations[0].payload
    assert event["schemaVersion"] == "1.0" and event["evaluationLevel"] == "TOOL_CALL"
    assert event["evaluatorId"] == "tool-checker-1" and event["evaluatorName"] == "tool_checker"
    assert event["evaluationTarget"] == {"traceIds": [T1], "spanIds": ["c1"]}
    assert event["evaluationReferenceInputs"] == []
    assert results[0].ignored_reference_fields == ("expectedTrajectory",)
