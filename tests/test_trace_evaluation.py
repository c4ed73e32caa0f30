"""run_evaluations end to end: a scripted judge behind the fake OpenAI server, a tiny judged evaluator defined
here, the trajectory evaluators, the request cache, stopping, progress, and judges named per evaluator."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.data.schemas import TRACE_EVALUATIONS
from eval_pipeline.inference.backends import build_remote_sampler
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import RequestCache, request_keys
from eval_pipeline.inference.model_spec import ModelSpec
from eval_pipeline.judging.metric import JudgeMetric, RatingLevel
from eval_pipeline.judging.prompt import judge_messages
from eval_pipeline.traces.evaluation import JudgeSetup, run_evaluations
from eval_pipeline.traces.evaluators.base import ErrorCode, JudgeAsk, Level, Planned, Target
from eval_pipeline.traces.evaluators.trajectory import TRAJECTORYEXACTORDERMATCH
from eval_pipeline.traces.ground_truth import ExpectedTurn, GroundTruth, SessionMetadata
from eval_pipeline.traces.sessions import Session, ToolCallRecord, Turn
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

QUALITY = JudgeMetric("ReplyQuality", "Rate the reply.\n{{prompt}}\n{{prediction}}\n{{ground_truth}}",
                      (RatingLevel("Good", 2.0), RatingLevel("Fair", 1.0), RatingLevel("Bad", 0.0)), builtin=True)
VERDICTS = {"good": "Good", "fair": "Fair", "bad": "Bad", "garbled": "Perhaps"}
"""The scripted judge's verdict by the first word of the reply it reads ("Perhaps" is no level: unparseable)."""
PARAMS = GenerationParams(max_tokens=256, temperature=0.0, seed=0)


@dataclass(frozen=True)
class ReplyQuality:
    """A tiny judged TRACE evaluator: one judge request per turn, the turn's expected response as reference."""

    evaluator_id: str = "Custom.ReplyQuality"
    name: str = "ReplyQuality"
    level: Level = Level.TRACE
    reads: frozenset[str] = frozenset({"expectedResponse"})
    judged: bool = True
    model: ModelSpec | None = None

    def plan(self, session: Session, truth: GroundTruth) -> list[Planned]:
        ignored = tuple(name for name in truth.given() if name not in self.reads)
        expected = [t.expected_response for t in truth.turns]
        return [JudgeAsk(self.evaluator_id, self.name, self.level.value,
                         Target(session.session_id, turn.trace_id, turn.root_span_id, index), QUALITY,
                         judge_messages(QUALITY, prompt=turn.prompt or "", prediction=turn.response or "",
                                        ground_truth=expected[index] if index < len(expected) else None),
                         ignored_reference_fields=ignored, model=self.model)
                for index, turn in enumerate(session.turns)]


def rule(blocks: dict[str, str], prompt: str) -> str:
    return VERDICTS[blocks["prediction"].split()[0]]


def turn(i: int, response: str, tools: tuple[str, ...] = ()) -> Turn:
    return Turn(f"{i:032x}", f"{i:016x}", f"question {i}", response, tool_calls=tuple(
        ToolCallRecord(name, f"{i:08x}{j:08x}", f"{i:032x}") for j, name in enumerate(tools)))


SESSIONS = [
    Session("s1", (turn(1, "good reply one", ("search",)), turn(2, "fair reply two"))),
    Session("s2", (turn(3, "bad reply three", ("book",)),)),
    Session("s3", (turn(4, "good but unreadable"),), error="no bodies", error_code="LogEventMissingException"),
    Session("s4", (turn(5, "garbled reply five"),)),
]
METADATA = {
    "s1": SessionMetadata("s1", "scenario-1", {}, GroundTruth(
        assertions=("answers",), expected_tool_names=("search",),
        turns=(ExpectedTurn("question 1", "expected one"),))),
    "s2": SessionMetadata("s2", "scenario-2", {}, GroundTruth(expected_tool_names=("search",))),
}
# (session, evaluator, value, score, label, error code): computed by hand from VERDICTS and the scale
EXPECTED = [
    ("s1", "Builtin.TrajectoryExactOrderMatch", 1.0, 1.0, "Yes", None),
    ("s1", "Custom.ReplyQuality", 2.0, 1.0, "Good", None),
    ("s1", "Custom.ReplyQuality", 1.0, 0.5, "Fair", None),
    ("s2", "Builtin.TrajectoryExactOrderMatch", 0.0, 0.0, "No", None),
    ("s2", "Custom.ReplyQuality", 0.0, 0.0, "Bad", None),
    ("s3", "Builtin.TrajectoryExactOrderMatch", None, None, None, ErrorCode.LOG_EVENT_MISSING.value),
    ("s3", "Custom.ReplyQuality", None, None, None, ErrorCode.LOG_EVENT_MISSING.value),
    ("s4", "Builtin.TrajectoryExactOrderMatch", None, None, None, ErrorCode.MISSING_GROUND_TRUTH.value),
    ("s4", "Custom.ReplyQuality", None, None, None, ErrorCode.JUDGE_UNPARSEABLE.value),
]


@pytest.fixture
def router() -> ModelRouter:
    return ModelRouter({"judge-model": scripted_judge(rule), "other-judge": scripted_judge(lambda b, p: "Fair")})


@pytest.fixture
def fake(router: ModelRouter) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer=router, known_models={"judge-model", "other-judge"}) as server:
        yield server


def spec(fake: FakeLLMServer, model: str) -> ModelSpec:
    return ModelSpec(name="judge", backend="openai", base_url=f"{fake.url}/v1", model=model, max_attempts=1)


def setup(fake: FakeLLMServer, cache: RequestCache | None = None) -> JudgeSetup:
    return JudgeSetup(build_remote_sampler(spec(fake, "judge-model")), PARAMS, "openai:judge-model", cache=cache,
                      sampler_for=build_remote_sampler)


def outcome(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    return [tuple(None if pd.isna(v) else v for v in row)
            for row in frame[["session_id", "evaluator_id", "value", "score", "label", "error_code"]].itertuples(
                index=False)]


def test_judged_and_programmatic_results_with_exact_values(fake: FakeLLMServer, router: ModelRouter) -> None:
    evaluators = [TRAJECTORYEXACTORDERMATCH, ReplyQuality()]
    progress: list[tuple[int, int]] = []
    sessions_done: list[int] = []
    run = run_evaluations(SESSIONS, METADATA, evaluators, judge=setup(fake), model="agent-v1",
                          on_progress=lambda done, total: progress.append((done, total)),
                          on_sessions=sessions_done.append)
    assert sessions_done and sessions_done[-1] == len(SESSIONS) and sessions_done == sorted(sessions_done)
    frame = run.frame
    assert list(frame.columns) == TRACE_EVALUATIONS.names
    assert outcome(frame) == EXPECTED
    assert router.calls == {"judge-model": 4} and fake.requests_total == 4
    assert (run.judge_requests, run.judge_sent, run.judge_cached, run.stopped) == (4, 4, 0, False)
    assert set(frame["model"]) == {"agent-v1"}
    scenarios = [None if pd.isna(v) else v for v in frame["test_scenario_id"]]
    assert scenarios == ["scenario-1"] * 3 + ["scenario-2"] * 2 + [None] * 4
    judged = frame[frame["evaluator_id"] == "Custom.ReplyQuality"]
    answered = judged[judged["judge_request_hash"].notna()]
    assert len(answered) == 4 and set(answered["judge_model"]) == {"openai:judge-model"}
    assert not answered["cached"].any()
    # the hash, tokens and targets of each judged row, computed independently of the runner
    asks = [(s, a) for s in SESSIONS if s.error is None
            for a in ReplyQuality().plan(s, METADATA.get(s.session_id, SessionMetadata(s.session_id)).ground_truth)]
    sampler = setup(fake).sampler
    for (session, ask), row in zip(asks, answered.itertuples(index=False), strict=True):
        [key] = request_keys(sampler, PARAMS, [GenerationRequest(session.session_id, 0, ask.messages)])
        assert row.judge_request_hash == key
        assert row.tokens_in == sum(len(m["content"].split()) for m in ask.messages)
        verdict = "Perhaps" if row.session_id == "s4" else row.label
        assert row.tokens_out == len(f"I compared the response with the rubric.\nVerdict: {verdict}".split())
        assert (row.trace_id, row.span_id) == (ask.target.trace_id, ask.target.span_id)
    first = judged.iloc[0]
    assert json.loads(first["ignored_reference_fields"]) == ["assertions", "expectedTrajectory"]
    assert first["explanation"] == "I compared the response with the rubric."
    garbled = judged[judged["session_id"] == "s4"].iloc[0]
    assert garbled["explanation"].endswith("Verdict: Perhaps") and "could not be parsed" in garbled["error"]
    assert progress[0] == (0, 9) and progress[-1] == (9, 9)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(progress))


def test_a_second_run_takes_every_verdict_from_the_cache(fake: FakeLLMServer, router: ModelRouter,
                                                          tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "cache.sqlite")
    evaluators = [TRAJECTORYEXACTORDERMATCH, ReplyQuality()]
    first = run_evaluations(SESSIONS, METADATA, evaluators, judge=setup(fake, cache))
    second = run_evaluations(SESSIONS, METADATA, evaluators, judge=setup(fake, cache))
    assert router.calls == {"judge-model": 4}  # the second run sent nothing
    assert (second.judge_requests, second.judge_sent, second.judge_cached) == (4, 0, 4)
    assert outcome(second.frame) == outcome(first.frame) == EXPECTED
    answered = second.frame["judge_request_hash"].notna()
    assert second.frame.loc[answered, "cached"].tolist() == [True] * 4
    assert (second.frame.loc[answered, "judge_request_hash"].tolist()
            == first.frame.loc[answered, "judge_request_hash"].tolist())


def test_should_stop_leaves_the_remaining_sessions_out(fake: FakeLLMServer, router: ModelRouter) -> None:
    answers = iter([False, False, True])
    run = run_evaluations(SESSIONS, METADATA, [TRAJECTORYEXACTORDERMATCH, ReplyQuality()], judge=setup(fake),
                          should_stop=lambda: next(answers))
    assert run.stopped and outcome(run.frame) == EXPECTED[:5]
    assert router.calls == {"judge-model": 3} and run.judge_requests == 3


def test_judges_named_by_an_evaluator_and_failed_requests(fake: FakeLLMServer, router: ModelRouter) -> None:
    own = ReplyQuality(evaluator_id="Custom.OwnJudge", model=spec(fake, "other-judge"))
    ghost = ReplyQuality(evaluator_id="Custom.Ghost", model=spec(fake, "ghost-model"))
    sessions = SESSIONS[:2]
    run = run_evaluations(sessions, METADATA, [own, ghost], judge=setup(fake))
    rows = run.frame
    mine = rows[rows["evaluator_id"] == "Custom.OwnJudge"]
    assert mine["label"].tolist() == ["Fair"] * 3 and mine["value"].tolist() == [1.0] * 3
    assert set(mine["judge_model"]) == {"openai:other-judge"}
    failed = rows[rows["evaluator_id"] == "Custom.Ghost"]
    assert failed["error_code"].tolist() == [ErrorCode.JUDGE_FAILED.value] * 3
    assert failed["value"].isna().all() and failed["error"].str.startswith("judge request failed").all()
    assert router.calls == {"other-judge": 3} and run.judge_requests == 6


def test_judged_evaluators_need_a_judge_before_anything_is_sent(fake: FakeLLMServer) -> None:
    with pytest.raises(ValueError, match=r"Custom\.ReplyQuality ask a judge model"):
        run_evaluations(SESSIONS, METADATA, [TRAJECTORYEXACTORDERMATCH, ReplyQuality()])
    no_factory = JudgeSetup(setup(fake).sampler, PARAMS, "openai:judge-model")
    with pytest.raises(ValueError, match="sampler_for"):
        run_evaluations(SESSIONS, METADATA, [ReplyQuality(), ReplyQuality(model=spec(fake, "other-judge"))],
                        judge=no_factory)
    assert fake.requests_total == 0


def test_programmatic_evaluators_alone_need_no_judge() -> None:
    run = run_evaluations(SESSIONS, METADATA, [TRAJECTORYEXACTORDERMATCH])
    assert outcome(run.frame) == [row for row in EXPECTED if row[1] == "Builtin.TrajectoryExactOrderMatch"]
    assert (run.judge_requests, run.judge_sent) == (0, 0) and run.frame["judge_model"].isna().all()
    empty = run_evaluations([], {}, [TRAJECTORYEXACTORDERMATCH])
    assert empty.frame.empty and list(empty.frame.columns) == TRACE_EVALUATIONS.names
