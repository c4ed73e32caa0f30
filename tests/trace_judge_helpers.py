"""Sessions built by hand and a small runner for JudgeAsks (the request machinery + the verdict parser), shared by
the judged and custom trace-evaluator tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eval_pipeline.inference.backends import build_remote_sampler
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.model_spec import ModelSpec
from eval_pipeline.inference.runner import complete_requests
from eval_pipeline.judging.verdict import parse_verdict
from eval_pipeline.traces.evaluators.base import JudgeAsk
from eval_pipeline.traces.sessions import Session, ToolCallRecord, Turn

SID = "sess-1"
T1, T2 = "a" * 32, "b" * 32


def call(name: str, span: str, trace: str, arguments: object, result: str) -> ToolCallRecord:
    return ToolCallRecord(name=name, span_id=span, trace_id=trace, call_id=f"tu-{span}", arguments=arguments,
                          result=result, status="OK")


def two_turn_session(weather_result: str = "Sunny, 24C") -> Session:
    """Turn 1: a question answered with one tool call; turn 2: a follow-up with two tool calls."""
    turn1 = Turn(trace_id=T1, root_span_id="r1", prompt="What is the weather in Paris?",
                 response="It is sunny and 24C in Paris.",
                 tool_calls=(call("get_weather", "c1", T1, {"city": "Paris"}, weather_result),))
    turn2 = Turn(trace_id=T2, root_span_id="r2", prompt="And book me a table for two in Lyon tonight.",
                 response="Booked a table for two at Chez Marc in Lyon at 20:00.",
                 tool_calls=(call("search_restaurants", "c2", T2, {"city": "Lyon"}, "Chez Marc; Le Bouchon"),
                             call("book_table", "c3", T2, {"restaurant": "Chez Marc", "people": 2},
                                  "confirmed 20:00")))
    return Session(session_id=SID, turns=(turn1, turn2),
                   available_tools=("get_weather", "search_restaurants", "book_table"), span_count=9)


@dataclass(frozen=True)
class Judged:
    label: str
    value: float
    score: float


def judge_sampler(base_url: str, model: str = "judge") -> object:
    return build_remote_sampler(ModelSpec(name="judge", backend="openai", model=model, base_url=f"{base_url}/v1"))


def run_asks(asks: list[JudgeAsk], sampler_for: Callable[[JudgeAsk], object]) -> list[Judged]:
    """Each ask sent through complete_requests and read with parse_verdict: value = the level's float value (else
    its score), as the evaluation runner does."""
    judged = []
    for ask in asks:
        request = GenerationRequest(f"{ask.evaluator_id}|{ask.target.trace_id}|{ask.target.span_id}",
                                    ask.target.index, ask.messages)
        params = GenerationParams(max_tokens=ask.max_tokens or 256, temperature=ask.temperature or 0.0)
        completed = complete_requests([request], sampler_for(ask), params)  # type: ignore[arg-type]
        completion = completed.completion(0)
        assert completion.error is None, completion.error
        verdict = parse_verdict(ask.metric, completion.output or "")
        level = verdict.level
        value = float(level.value) if level.is_float else verdict.score
        judged.append(Judged(level.definition, value, verdict.score))
    return judged
