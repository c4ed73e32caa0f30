"""Running evaluators over sessions: every session × evaluator planned, the judged ones answered through the
request machinery (``inference.runner.complete_requests``: cache, concurrency, retries, progress), read with the
judge's verdict parser, and written as TRACE_EVALUATIONS rows.

Order of the rows: sessions in the order given, then evaluators in the order given, then each evaluator's targets
in the order it planned them. Judge requests are sent in chunks of whole sessions (at least ``CHUNK_ASKS`` asks,
so requests run concurrently); ``should_stop`` is checked before each session, and a stop leaves that session
and the rest out (the sessions already started are finished).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from eval_pipeline.data.schemas import TRACE_EVALUATIONS
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest, Sampler
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.model_spec import ModelSpec
from eval_pipeline.inference.runner import complete_requests
from eval_pipeline.judging.verdict import VerdictParseError, parse_verdict
from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, Evaluator, JudgeAsk, Planned
from eval_pipeline.traces.evaluators.outcomes import session_error_result
from eval_pipeline.traces.ground_truth import GroundTruth, SessionMetadata
from eval_pipeline.traces.likelihood_answers import LikelihoodCounts, likelihood_results
from eval_pipeline.traces.sessions import Session

CHUNK_ASKS = 64
"""Judge requests gathered (whole sessions) before they are sent together."""


@dataclass
class JudgeSetup:
    """The job's judge: its sampler, pinned parameters and label (``judge_model`` of every row), the request
    cache, and how to make a sampler for an evaluator that names its own judge model."""

    sampler: Sampler
    params: GenerationParams
    label: str
    cache: RequestCache | None = None
    sampler_for: Callable[[ModelSpec], Sampler] | None = None
    likelihood: LikelihoodScorer | None = None
    """Read the job judge's verdicts by likelihood (``verdict: likelihood``) instead of from a written verdict line;
    asks that name their own judge model still write theirs."""


@dataclass
class EvaluationRun:
    frame: pd.DataFrame
    """TRACE_EVALUATIONS rows."""
    judge_requests: int
    judge_sent: int
    judge_cached: int
    stopped: bool


def model_label(spec: ModelSpec) -> str:
    """A judge model as rows record it: backend and model (or endpoint)."""
    return f"{spec.backend}:{spec.model or spec.endpoint or spec.name}"


def run_evaluations(sessions: Sequence[Session], metadata: Mapping[str, SessionMetadata],
                    evaluators: Sequence[Evaluator], *, judge: JudgeSetup | None = None, model: str | None = None,
                    on_progress: Callable[[int, int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    on_sessions: Callable[[int], None] | None = None) -> EvaluationRun:
    """Every evaluator on every session (see the module docstring); ``on_progress(done, total)`` counts results,
    ``on_sessions(done)`` the sessions whose every result is in.

    Raises ValueError, before anything is sent, when an evaluator is judged and there is no ``judge``, or an
    evaluator names its own judge model and the setup has no ``sampler_for``.
    """
    judged = [e.evaluator_id for e in evaluators if e.judged]
    if judged and judge is None:
        raise ValueError(f"evaluators {', '.join(judged)} ask a judge model, and no judge is configured")
    plans = [_plan(session, metadata.get(session.session_id), evaluators) for session in sessions]
    asks = [item for plan in plans for item in plan if isinstance(item, JudgeAsk)]
    if any(ask.model is not None for ask in asks) and (judge is None or judge.sampler_for is None):
        raise ValueError("an evaluator names its own judge model, and the judge setup cannot make samplers "
                         "(JudgeSetup.sampler_for)")
    total = sum(len(plan) for plan in plans)
    done, stats = 0, _Stats()
    rows: list[dict[str, object]] = []
    chunk: list[tuple[Session, list[Planned]]] = []
    stopped = False

    sessions_done = 0

    def flush() -> None:
        nonlocal done, sessions_done
        chunk_asks = [item for _, plan in chunk for item in plan if isinstance(item, JudgeAsk)]
        offset = done + sum(1 for _, plan in chunk for item in plan if not isinstance(item, JudgeAsk))
        answers = _answer(chunk_asks, judge, stats, on_progress, offset, total) if chunk_asks else {}
        for session, plan in chunk:
            scenario = metadata[session.session_id].test_scenario_id if session.session_id in metadata else None
            for item in plan:
                result = answers[id(item)] if isinstance(item, JudgeAsk) else item
                rows.append(result.as_row(model=model, test_scenario_id=scenario))
        done += sum(len(plan) for _, plan in chunk)
        sessions_done += len(chunk)
        if on_progress:
            on_progress(done, total)
        if on_sessions and chunk:
            on_sessions(sessions_done)
        chunk.clear()

    if on_progress:
        on_progress(0, total)
    for session, plan in zip(sessions, plans, strict=True):
        if should_stop is not None and should_stop():
            stopped = True
            break
        chunk.append((session, plan))
        if sum(isinstance(item, JudgeAsk) for _, p in chunk for item in p) >= CHUNK_ASKS:
            flush()
    flush()
    frame = pd.DataFrame(rows, columns=TRACE_EVALUATIONS.names)
    return EvaluationRun(frame=frame, judge_requests=stats.requests, judge_sent=stats.sent,
                         judge_cached=stats.cached, stopped=stopped)


def _plan(session: Session, metadata: SessionMetadata | None, evaluators: Sequence[Evaluator]) -> list[Planned]:
    truth = metadata.ground_truth if metadata is not None else GroundTruth()
    planned: list[Planned] = []
    for evaluator in evaluators:
        failed = session_error_result(evaluator, session, truth)
        planned.extend([failed] if failed is not None else evaluator.plan(session, truth))
    return planned


@dataclass
class _Stats:
    requests: int = 0
    sent: int = 0
    cached: int = 0


def _answer(asks: list[JudgeAsk], judge: JudgeSetup | None, stats: _Stats,
            on_progress: Callable[[int, int], None] | None, offset: int, total: int) -> dict[int, EvaluationResult]:
    """Each ask's result by ``id(ask)``: asks grouped by judge sampler and parameters, each group sent through
    ``complete_requests``."""
    assert judge is not None
    results: dict[int, EvaluationResult] = {}
    if judge.likelihood is not None:
        by_likelihood = [ask for ask in asks if ask.model is None]
        counts = LikelihoodCounts()
        results |= likelihood_results(by_likelihood, judge.likelihood, label=judge.label, cache=judge.cache,
                                      counts=counts)
        stats.requests += counts.requests
        stats.cached += counts.cached
        stats.sent += counts.requests - counts.cached
        asks = [ask for ask in asks if ask.model is not None]
        offset += len(by_likelihood)
    groups: dict[str, tuple[Sampler, GenerationParams, str, list[JudgeAsk]]] = {}
    samplers: dict[str, Sampler] = {}
    for ask in asks:
        if ask.model is None:
            sampler, label, sampler_key = judge.sampler, judge.label, ""
        else:
            assert judge.sampler_for is not None
            sampler_key = ask.model.model_dump_json()
            if sampler_key not in samplers:
                samplers[sampler_key] = judge.sampler_for(ask.model)
            sampler, label = samplers[sampler_key], model_label(ask.model)
        params = judge.params
        if ask.max_tokens is not None:
            params = dataclasses.replace(params, max_tokens=ask.max_tokens)
        if ask.temperature is not None:
            params = dataclasses.replace(params, temperature=ask.temperature)
        if isinstance(ask.extra.get("top_p"), int | float):
            params = dataclasses.replace(params, top_p=float(ask.extra["top_p"]))
        key = json.dumps([sampler_key, dataclasses.asdict(params)], sort_keys=True)
        groups.setdefault(key, (sampler, params, label, []))[3].append(ask)
    finished = 0
    for sampler, params, label, members in groups.values():
        requests = [GenerationRequest(ask.target.session_id, 0, ask.messages) for ask in members]

        def progress(count: int, _total: int, base: int = finished) -> None:
            if on_progress:
                on_progress(offset + base + count, total)

        done = complete_requests(requests, sampler, params, cache=judge.cache, on_progress=progress)
        finished += len(members)
        stats.requests += len(members)
        stats.sent += done.sent
        stats.cached += sum(1 for key in done.keys if key in done.cached)
        for position, ask in enumerate(members):
            key = done.keys[position]
            results[id(ask)] = _result(ask, done.completion(position), key, key in done.cached, label)
    return results


def _result(ask: JudgeAsk, completion: Completion, key: str, cached: bool, label: str) -> EvaluationResult:
    base = EvaluationResult(evaluator_id=ask.evaluator_id, evaluator_name=ask.evaluator_name, level=ask.level,
                            target=ask.target, ignored_reference_fields=ask.ignored_reference_fields,
                            judge_model=label, judge_request_hash=key, tokens_in=completion.tokens_in,
                            tokens_out=completion.tokens_out, cost_usd=completion.cost_usd, cached=cached)
    if completion.error is not None or completion.output is None:
        return dataclasses.replace(base, error_code=ErrorCode.JUDGE_FAILED.value,
                                   error=f"judge request failed: {completion.error}")
    try:
        verdict = parse_verdict(ask.metric, completion.output)
    except VerdictParseError as exc:
        return dataclasses.replace(base, explanation=completion.output, error_code=ErrorCode.JUDGE_UNPARSEABLE.value,
                                   error=f"judge reply could not be parsed: {exc}")
    level = verdict.level
    value = float(level.value) if ask.metric.float_scale else verdict.score
    return dataclasses.replace(base, value=value, score=verdict.score, label=level.definition,
                               explanation=verdict.explanation)
