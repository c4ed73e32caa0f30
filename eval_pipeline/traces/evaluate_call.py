"""The data plane's synchronous ``Evaluate``: one evaluator on one session given inline (its span and event
records), now; limited to ``evaluationTarget``'s traces or spans, with ground truth from
``evaluationReferenceInputs``, answered in the service's ``evaluationResults`` shape."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from eval_pipeline.traces.batch_judge import BatchJudge, close_judge
from eval_pipeline.traces.evaluator_catalog import EvaluatorCatalog
from eval_pipeline.traces.evaluators.base import Level
from eval_pipeline.traces.ground_truth import MAX_ASSERTIONS, ExpectedTurn, GroundTruth, SessionMetadata
from eval_pipeline.traces.service_errors import ValidationException
from eval_pipeline.traces.service_shapes import builtin_evaluator_arn, missing

MAX_SESSION_SPANS = 20_000
MAX_TARGET_IDS = 10
MAX_REFERENCE_INPUTS = 1000


def evaluate_session(catalog: EvaluatorCatalog, judges: BatchJudge, *, evaluator_id: str,
                     evaluation_input: Mapping[str, Any], target: Mapping[str, Any] | None = None,
                     references: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``Evaluate``'s response (``evaluationResults``) for the request's parts, checked in the service's order."""
    from eval_pipeline.traces.evaluation import run_evaluations

    catalog.check_ids([evaluator_id], field="evaluatorId")
    spans = (evaluation_input or {}).get("sessionSpans")
    if not isinstance(spans, list) or not 1 <= len(spans) <= MAX_SESSION_SPANS:
        raise ValidationException(f"give 1 to {MAX_SESSION_SPANS} span and event records",
                                  field="evaluationInput.sessionSpans")
    target_kind, target_ids = _target(target)
    references = _reference_inputs(references)
    session = _one_session(spans)
    evaluator = catalog.build([evaluator_id])[0]
    metadata = {session.session_id: _reference_metadata(session, references)}
    if target_kind is not None and Level(evaluator.level) is not Level.SESSION:
        session = _targeted(session, target_ids)  # only the targeted turns are judged (and paid for)
    judge = judges.setup([evaluator])
    try:
        run = run_evaluations([session], metadata, [evaluator], judge=judge, model=session.service)
    finally:
        close_judge(judge)
    frame = _only_targets(run.frame, session, target_kind, target_ids)
    arns = {evaluator_id: catalog.arn(evaluator_id)}
    return {"evaluationResults": [service_result(row, arns) for row in frame.to_dict("records")]}


def service_result(row: Mapping[str, Any], arns: Mapping[str, str]) -> dict[str, Any]:
    """A TRACE_EVALUATIONS row as one of ``Evaluate``'s ``evaluationResults``."""
    context = {"sessionId": row["session_id"]}
    for key, column in (("traceId", "trace_id"), ("spanId", "span_id")):
        if not missing(row.get(column)):
            context[key] = row[column]
    result: dict[str, Any] = {"evaluatorArn": arns.get(row["evaluator_id"], builtin_evaluator_arn(row["evaluator_id"])),
                              "evaluatorId": row["evaluator_id"], "evaluatorName": row["evaluator_name"],
                              "context": {"spanContext": context}}
    if not missing(row.get("explanation")):
        result["explanation"] = str(row["explanation"])[:2048]
    if not missing(row.get("value")):
        result["value"] = float(row["value"])
    if not missing(row.get("label")):
        result["label"] = row["label"]
    if not missing(row.get("tokens_in")) or not missing(row.get("tokens_out")):
        tokens_in = 0 if missing(row.get("tokens_in")) else int(row["tokens_in"])
        tokens_out = 0 if missing(row.get("tokens_out")) else int(row["tokens_out"])
        result["tokenUsage"] = {"inputTokens": tokens_in, "outputTokens": tokens_out,
                                "totalTokens": tokens_in + tokens_out}
    if not missing(row.get("error_code")):
        result["errorCode"] = row["error_code"]
    if not missing(row.get("error")):
        result["errorMessage"] = str(row["error"])[:2048]
    ignored = row.get("ignored_reference_fields")
    result["ignoredReferenceInputFields"] = json.loads(ignored) if isinstance(ignored, str) else []
    return result


def _one_session(spans: list[Any]) -> Any:
    """The one session that the inline span and event records hold."""
    from eval_pipeline.traces.otel_records import traces_frame
    from eval_pipeline.traces.records import RawRecord
    from eval_pipeline.traces.sessions import sessions_from_traces

    records = (RawRecord(dict(item), source="evaluationInput.sessionSpans", line=index + 1)
               for index, item in enumerate(spans))
    sessions = sessions_from_traces(traces_frame(records))
    if len(sessions) != 1:
        raise ValidationException(f"the spans must hold exactly one session (they hold {len(sessions)})",
                                  field="evaluationInput.sessionSpans")
    return sessions[0]


def _target(target: Mapping[str, Any] | None) -> tuple[str | None, set[str]]:
    """``evaluationTarget`` as (``traceIds`` | ``spanIds`` | None, the ids)."""
    if not target:
        return None, set()
    given = [key for key in ("traceIds", "spanIds") if target.get(key) is not None]
    unknown = sorted(set(target) - {"traceIds", "spanIds"})
    if unknown or len(given) != 1:
        raise ValidationException("give exactly one of traceIds, spanIds", field="evaluationTarget")
    ids = target[given[0]]
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_TARGET_IDS:
        raise ValidationException(f"give 1 to {MAX_TARGET_IDS} ids", field=f"evaluationTarget.{given[0]}")
    return given[0], {str(item) for item in ids}


def _targeted(session: Any, ids: set[str]) -> Any:
    """The session with only the turns that a target names (by trace id, root span id or tool span id); each
    turn keeps its own conversation so far, so a judge reads the same context as with the whole session."""
    turns = tuple(turn for turn in session.turns
                  if turn.trace_id in ids or turn.root_span_id in ids
                  or any(call.span_id in ids for call in turn.tool_calls))
    return dataclasses.replace(session, turns=turns)


def _only_targets(frame: pd.DataFrame, session: Any, kind: str | None, ids: set[str]) -> pd.DataFrame:
    """The results about the targeted traces, or spans (a turn's result counts for its root span)."""
    if kind == "traceIds":
        return frame[frame["trace_id"].isin(ids)]
    if kind == "spanIds":
        roots = {turn.trace_id for turn in session.turns if turn.root_span_id in ids}
        return frame[frame["span_id"].isin(ids) | (frame["span_id"].isna() & frame["trace_id"].isin(roots))]
    return frame


def _reference_inputs(references: list[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """``evaluationReferenceInputs`` checked: 1–1000, each naming its session, 1–100 assertions."""
    if references is None:
        return []
    if not isinstance(references, list) or not 1 <= len(references) <= MAX_REFERENCE_INPUTS:
        raise ValidationException(f"give 1 to {MAX_REFERENCE_INPUTS} reference inputs",
                                  field="evaluationReferenceInputs")
    for index, reference in enumerate(references):
        where = f"evaluationReferenceInputs[{index}]"
        context = ((reference or {}).get("context") or {}).get("spanContext") or {}
        if not context.get("sessionId"):
            raise ValidationException("needs context.spanContext.sessionId", field=f"{where}.context")
        assertions = reference.get("assertions")
        if assertions is not None and not 1 <= len(assertions) <= MAX_ASSERTIONS:
            raise ValidationException(f"give 1 to {MAX_ASSERTIONS} assertions", field=f"{where}.assertions")
    return references


def _reference_metadata(session: Any, references: list[Mapping[str, Any]]) -> SessionMetadata:
    """Ground truth for ``evaluate`` from ``evaluationReferenceInputs``: assertions and the expected trajectory
    for the session; an expected response for the trace its context names (the last trace when it names none)."""
    assertions: list[str] = []
    tools: list[str] | None = None
    expected: dict[str, str] = {}
    traces = [turn.trace_id for turn in session.turns]
    for reference in references:
        context = reference["context"]["spanContext"]
        assertions += [item["text"] for item in reference.get("assertions") or []]
        if reference.get("expectedTrajectory") is not None:
            tools = list(reference["expectedTrajectory"].get("toolNames") or [])
        if reference.get("expectedResponse") is not None and traces:
            expected[context.get("traceId") or traces[-1]] = reference["expectedResponse"]["text"]
    turns = tuple(ExpectedTurn(prompt=turn.prompt, expected_response=expected.get(turn.trace_id))
                  for turn in session.turns) if expected else ()
    truth = GroundTruth(assertions=tuple(assertions), expected_tool_names=tuple(tools) if tools is not None else None,
                        turns=turns)
    return SessionMetadata(session.session_id, None, {}, truth)
