"""Custom evaluators from ``create_evaluator``'s configuration: ``llmAsAJudge`` (instructions, a rating scale, a
judge model) or ``codeBased`` (a Lambda function, or here a Python callable in its place).

``llmAsAJudge``:
  ``instructions`` use the level's placeholders in single braces (SESSION ``{context}`` ``{available_tools}``
  ``{assertions}`` ``{expected_tool_trajectory}``; TRACE ``{context}`` ``{assistant_turn}`` ``{expected_response}``;
  TOOL_CALL ``{available_tools}`` ``{context}`` ``{tool_turn}`` (alias ``{tool_call}``)), at least one;
  ``ratingScale`` is ``numerical`` ``[{value, label, definition}]`` (a result's value is the label's value, its
  score the value scaled to [0, 1] over the scale's range) or ``categorical`` ``[{label, definition}]`` (score by
  position: first listed 1.0, last 0.0); ``modelConfig.bedrockEvaluatorModelConfig`` ``{modelId,
  inferenceConfig{maxTokens, temperature, topP}}`` judges with that Bedrock model; self-hosting also takes
  ``modelConfig.model``, one of our model specs (any backend). Without ``modelConfig`` the job's judge is used.

``codeBased``:
  ``lambdaConfig {lambdaArn, lambdaTimeoutInSeconds}`` invokes the function with boto3 (``RequestResponse``), or
  ``python: "module:function"`` (an importable module, or a ``.py`` path relative to ``root``) calls it in-process.
  Both get the service's event (``schemaVersion`` "1.0", ``evaluatorId``, ``evaluatorName``, ``evaluationLevel``,
  ``evaluationInput.sessionSpans``, ``evaluationReferenceInputs`` filtered by level, ``evaluationTarget`` with
  ``traceIds``/``spanIds``, None for SESSION) plus ``evaluationInput.session``, the session as turns and tool
  calls (our extension: ``sessionSpans`` is rebuilt from the session, one agent span per turn and one tool span
  per call, since the evaluator sees sessions rather than raw records). They return ``{label, value,
  explanation}`` or ``{errorCode, errorMessage}``. An exception, a Lambda ``FunctionError`` or a malformed return
  is an error row (``EvaluatorFailed``) with the reason, never a value.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.judging.metric import JudgeMetric, RatingLevel
from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, Evaluator, Level, Planned, Target
from eval_pipeline.traces.evaluators.judged import JudgedEvaluator, expected_turn_for
from eval_pipeline.traces.evaluators.prompt import FIELD_READS, LEVEL_FIELDS, fields_in
from eval_pipeline.traces.ground_truth import GroundTruth
from eval_pipeline.traces.request import CustomEvaluatorShape
from eval_pipeline.traces.sessions import Session

CodeFunction = Callable[[dict[str, Any]], Any]
LEVEL_READS: dict[Level, frozenset[str]] = {Level.SESSION: frozenset({"assertions", "expectedTrajectory"}),
                                            Level.TRACE: frozenset({"expectedResponse"}),
                                            Level.TOOL_CALL: frozenset()}
"""The reference inputs a code evaluator is given at each level (the service filters them by level)."""


def _error(message: str, field: str) -> EvalInputError:
    return EvalInputError(message, field=f"evaluatorConfig.{field}")


def custom_evaluator(evaluator_id: str, shape: CustomEvaluatorShape, *, root: Path | None = None) -> Evaluator:
    """The evaluator a ``create_evaluator`` request describes; EvalInputError naming the bad field otherwise."""
    config = shape.evaluatorConfig
    kinds = [k for k in ("llmAsAJudge", "codeBased") if k in config]
    if len(kinds) != 1 or set(config) - {"llmAsAJudge", "codeBased"}:
        raise EvalInputError(f"give exactly one of llmAsAJudge, codeBased (got {sorted(config) or 'none'})",
                             field="evaluatorConfig")
    level = Level(shape.level)
    if kinds[0] == "llmAsAJudge":
        return llm_judge_evaluator(evaluator_id, shape.evaluatorName, level, config["llmAsAJudge"])
    return code_evaluator(evaluator_id, shape.evaluatorName, level, config["codeBased"], root=root)


# --- llmAsAJudge -----------------------------------------------------------------------------------------------

def llm_judge_evaluator(evaluator_id: str, name: str, level: Level, config: Any) -> JudgedEvaluator:
    if not isinstance(config, Mapping):
        raise _error("must be an object", "llmAsAJudge")
    unknown = set(config) - {"instructions", "ratingScale", "modelConfig"}
    if unknown:
        raise _error(f"unknown key(s) {', '.join(sorted(unknown))}", "llmAsAJudge")
    instructions = _instructions(config.get("instructions"), level)
    metric, meanings = _rating_scale(name, instructions, config.get("ratingScale"))
    model, max_tokens, temperature, top_p = _model_config(name, config.get("modelConfig"))
    reads = frozenset(FIELD_READS[f] for f in fields_in(instructions) if f in FIELD_READS)
    return JudgedEvaluator(evaluator_id, name, level, instructions, metric, meanings, reads, model=model,
                           max_tokens=max_tokens, temperature=temperature, top_p=top_p)


def _instructions(value: Any, level: Level) -> str:
    field = "llmAsAJudge.instructions"
    if not isinstance(value, str) or not value.strip():
        raise _error("instructions must be a non-empty string", field)
    used = fields_in(value)
    allowed = LEVEL_FIELDS[level]
    bad = [name for name in used if name not in allowed]
    if bad:
        known = {f for fields in LEVEL_FIELDS.values() for f in fields}
        kind = ["unknown" if name not in known else f"not a {level.value}-level" for name in bad]
        raise _error("; ".join(f"{{{name}}} is {k} placeholder" for name, k in zip(bad, kind, strict=True))
                     + f" (a {level.value} evaluator may use {', '.join('{' + a + '}' for a in allowed)})", field)
    if not used:
        raise _error("instructions must use at least one placeholder: "
                     + ", ".join("{" + a + "}" for a in allowed), field)
    return value


def _rating_scale(name: str, instructions: str, value: Any) -> tuple[JudgeMetric, tuple[str, ...]]:
    field = "llmAsAJudge.ratingScale"
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in ("numerical", "categorical"):
        raise _error("give exactly one of numerical, categorical", field)
    kind, entries = next(iter(value.items()))
    field = f"{field}.{kind}"
    if not isinstance(entries, list) or not entries:
        raise _error("the rating scale is empty", field)
    levels, meanings, seen = [], [], set()
    for i, entry in enumerate(entries):
        where = f"{field}[{i}]"
        allowed = {"label", "definition"} | ({"value"} if kind == "numerical" else set())
        if not isinstance(entry, Mapping) or set(entry) - allowed:
            raise _error(f"each entry is an object with {', '.join(sorted(allowed))}", where)
        label = entry.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _error("label must be a non-empty string", f"{where}.label")
        if label.strip().casefold() in seen:
            raise _error(f"label {label!r} is repeated", f"{where}.label")
        seen.add(label.strip().casefold())
        definition = entry.get("definition", "")
        if not isinstance(definition, str):
            raise _error("definition must be a string", f"{where}.definition")
        if kind == "numerical":
            number = entry.get("value")
            if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
                raise _error(f"value must be a finite number (got {number!r})", f"{where}.value")
            levels.append(RatingLevel(label.strip(), float(number)))
        else:
            levels.append(RatingLevel(label.strip(), label.strip()))
        meanings.append(definition)
    return JudgeMetric(name, instructions, tuple(levels)), tuple(meanings)


def _model_config(name: str, value: Any) -> tuple[Any, int | None, float | None, float | None]:
    """(ModelSpec | None, max_tokens, temperature, top_p) from ``modelConfig``."""
    from eval_pipeline.inference.model_spec import ModelSpec

    field = "llmAsAJudge.modelConfig"
    if value is None:
        return None, None, None, None
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in (
            "bedrockEvaluatorModelConfig", "model"):
        raise _error("give exactly one of bedrockEvaluatorModelConfig, model", field)
    if "model" in value:
        try:
            spec = ModelSpec.model_validate({"name": _spec_name(name), **dict(value["model"])})
        except (TypeError, ValueError) as exc:
            raise _error(f"not a model spec: {exc}", f"{field}.model") from None
        return spec, None, None, None
    bedrock = value["bedrockEvaluatorModelConfig"]
    field = f"{field}.bedrockEvaluatorModelConfig"
    if not isinstance(bedrock, Mapping) or not isinstance(bedrock.get("modelId"), str) or not bedrock["modelId"]:
        raise _error("modelId is required", f"{field}.modelId")
    inference = bedrock.get("inferenceConfig") or {}
    unknown = set(inference) - {"maxTokens", "temperature", "topP", "stopSequences"}
    if unknown:
        raise _error(f"unknown key(s) {', '.join(sorted(unknown))}", f"{field}.inferenceConfig")
    max_tokens = inference.get("maxTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _error("maxTokens must be a positive integer", f"{field}.inferenceConfig.maxTokens")
    numbers = {}
    for key, high in (("temperature", 1.0), ("topP", 1.0)):
        number = inference.get(key)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)
                                   or not 0.0 <= number <= high):
            raise _error(f"{key} must be a number in [0, {high}]", f"{field}.inferenceConfig.{key}")
        numbers[key] = None if number is None else float(number)
    spec = ModelSpec(name=_spec_name(bedrock["modelId"]), backend="bedrock", model=bedrock["modelId"])
    return spec, max_tokens, numbers["temperature"], numbers["topP"]


def _spec_name(text: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in text).strip("-_.") or "judge"
    return cleaned[:63]


# --- codeBased -------------------------------------------------------------------------------------------------

def code_evaluator(evaluator_id: str, name: str, level: Level, config: Any, *,
                   root: Path | None = None) -> CodeEvaluator:
    if not isinstance(config, Mapping) or len(config) != 1 or next(iter(config)) not in ("lambdaConfig", "python"):
        raise _error("give exactly one of lambdaConfig, python", "codeBased")
    if "python" in config:
        function: CodeFunction = load_python_function(config["python"], root=root)
    else:
        function = lambda_function(config["lambdaConfig"])
    return CodeEvaluator(evaluator_id, name, level, function, LEVEL_READS[level])


def load_python_function(reference: Any, *, root: Path | None = None) -> CodeFunction:
    """``module:function`` (importable) or ``path/to/file.py:function`` (relative to ``root``)."""
    field = "codeBased.python"
    if not isinstance(reference, str) or reference.count(":") < 1:
        raise _error(f"expected 'module:function' (got {reference!r})", field)
    module_name, _, attr = reference.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            path = path if path.is_absolute() else (root or Path.cwd()) / path
            spec = importlib.util.spec_from_file_location(f"_custom_evaluator_{path.stem}", path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        function = getattr(module, attr)
    except Exception as exc:  # any import failure is the reference's fault
        raise _error(f"cannot load {reference!r}: {type(exc).__name__}: {exc}", field) from None
    if not callable(function):
        raise _error(f"{reference!r} is not callable", field)
    return function


def lambda_function(config: Any) -> CodeFunction:
    """A callable that invokes the Lambda with the real boto3 client and returns its decoded payload; a
    ``FunctionError`` is raised as ``CodeEvaluatorError`` with the function's message."""
    field = "codeBased.lambdaConfig"
    if not isinstance(config, Mapping) or not isinstance(config.get("lambdaArn"), str) or not config["lambdaArn"]:
        raise _error("lambdaArn is required", f"{field}.lambdaArn")
    timeout = config.get("lambdaTimeoutInSeconds", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 300:
        raise _error("lambdaTimeoutInSeconds must be an integer in [1, 300]", f"{field}.lambdaTimeoutInSeconds")
    arn: str = config["lambdaArn"]
    parts = arn.split(":")
    region = parts[3] if len(parts) > 4 and parts[0] == "arn" and parts[3] else None
    client: list[Any] = []

    def invoke(event: dict[str, Any]) -> Any:
        if not client:
            import boto3
            from botocore.config import Config

            client.append(boto3.client("lambda", region_name=region,
                                       config=Config(read_timeout=timeout + 5, retries={"mode": "standard"})))
        response = client[0].invoke(FunctionName=arn, InvocationType="RequestResponse",
                                    Payload=json.dumps(event).encode("utf-8"))
        body = response["Payload"].read()
        if response.get("FunctionError"):
            try:
                detail = json.loads(body)
                message = f"{detail.get('errorType', 'Error')}: {detail.get('errorMessage', '')}"
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace")[:500]
            raise CodeEvaluatorError(f"Lambda {arn} failed ({response['FunctionError']}): {message}")
        return json.loads(body)

    return invoke


class CodeEvaluatorError(RuntimeError):
    """A code evaluator's function failed (its own exception is reported the same way)."""


@dataclass(frozen=True)
class CodeEvaluator:
    """A code-based custom evaluator: one call of its function per target, its return read as the result."""

    evaluator_id: str
    name: str
    level: Level
    function: CodeFunction
    reads: frozenset[str]
    judged: bool = False

    def plan(self, session: Session, truth: GroundTruth) -> list[Planned]:
        ignored = tuple(name for name in truth.given() if name not in self.reads)
        if session.error:
            return [self._result(Target(session.session_id), ignored, error_code=session.error_code
                                 or ErrorCode.LOG_EVENT_MISSING, error=session.error)]
        targets = self._targets(session)
        if not targets:
            what = "turns" if self.level is Level.TRACE else "tool calls"
            return [self._result(Target(session.session_id), ignored, error_code=ErrorCode.NOTHING_TO_EVALUATE,
                                 error=f"session {session.session_id!r} has no {what} for {self.name}")]
        spans = session_spans(session)
        return [self._run(target, spans, session, truth, ignored) for target in targets]

    def _targets(self, session: Session) -> list[Target]:
        sid = session.session_id
        if self.level is Level.SESSION:
            return [Target(sid)]
        if self.level is Level.TRACE:
            return [Target(sid, t.trace_id, t.root_span_id, i) for i, t in enumerate(session.turns)]
        return [Target(sid, c.trace_id, c.span_id, i) for i, c in enumerate(session.tool_calls)]

    def _run(self, target: Target, spans: list[dict[str, Any]], session: Session, truth: GroundTruth,
             ignored: tuple[str, ...]) -> EvaluationResult:
        event = code_event(self, target, spans, session, truth)
        try:
            returned = self.function(event)
        except Exception as exc:  # the function's failure is its result, never a crash of the job
            return self._result(target, ignored, error_code=ErrorCode.EVALUATOR_FAILED,
                                error=f"{type(exc).__name__}: {exc}"[:2000])
        return self._read(target, returned, ignored)

    def _read(self, target: Target, returned: Any, ignored: tuple[str, ...]) -> EvaluationResult:
        def malformed(why: str) -> EvaluationResult:
            return self._result(target, ignored, error_code=ErrorCode.EVALUATOR_FAILED,
                                error=f"{self.name} returned a malformed result ({why}): {str(returned)[:300]}")

        if not isinstance(returned, Mapping):
            return malformed("not an object")
        if returned.get("errorCode"):
            return self._result(target, ignored, error_code=str(returned["errorCode"]),
                                error=str(returned.get("errorMessage") or returned["errorCode"]))
        label, value, explanation = returned.get("label"), returned.get("value"), returned.get("explanation")
        if not isinstance(label, str) or not label:
            return malformed("no label")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            return malformed("value is not a finite number")
        if explanation is not None and not isinstance(explanation, str):
            return malformed("explanation is not a string")
        number = None if value is None else float(value)
        score = number if number is not None and 0.0 <= number <= 1.0 else None
        return self._result(target, ignored, value=number, score=score, label=label, explanation=explanation)

    def _result(self, target: Target, ignored: tuple[str, ...], **values: Any) -> EvaluationResult:
        if values.get("error_code") is not None:
            values["error_code"] = str(values["error_code"])
        return EvaluationResult(self.evaluator_id, self.name, self.level.value, target,
                                ignored_reference_fields=ignored, **values)


def code_event(evaluator: CodeEvaluator, target: Target, spans: list[dict[str, Any]], session: Session,
               truth: GroundTruth) -> dict[str, Any]:
    """The event a code evaluator receives for one target (the service's shape, plus ``evaluationInput.session``)."""
    references: list[dict[str, Any]] = []
    if evaluator.level is Level.SESSION and (truth.assertions or truth.expected_tool_names is not None):
        reference: dict[str, Any] = {"context": {"spanContext": {"sessionId": session.session_id}}}
        if truth.assertions:
            reference["assertions"] = [{"text": text} for text in truth.assertions]
        if truth.expected_tool_names is not None:
            reference["expectedTrajectory"] = {"toolNames": list(truth.expected_tool_names)}
        references.append(reference)
    if evaluator.level is Level.TRACE:
        expected = expected_turn_for(truth, target.index, session.turns[target.index])
        if expected is not None and expected.expected_response:
            references.append({"context": {"spanContext": target.span_context()},
                               "expectedResponse": {"text": expected.expected_response}})
    evaluation_target = None
    if evaluator.level is not Level.SESSION:
        evaluation_target = {"traceIds": [target.trace_id]}
        if evaluator.level is Level.TOOL_CALL:
            evaluation_target["spanIds"] = [target.span_id]
    return {"schemaVersion": "1.0", "evaluatorId": evaluator.evaluator_id, "evaluatorName": evaluator.name,
            "evaluationLevel": evaluator.level.value,
            "evaluationInput": {"sessionSpans": spans, "session": session_document(session)},
            "evaluationReferenceInputs": references, "evaluationTarget": evaluation_target}


def session_document(session: Session) -> dict[str, Any]:
    """The session as JSON: its turns with prompt, reply and tool calls."""
    return {"sessionId": session.session_id, "availableTools": list(session.available_tools),
            "turns": [{"traceId": t.trace_id, "spanId": t.root_span_id, "prompt": t.prompt, "response": t.response,
                       "toolCalls": [{"spanId": c.span_id, "name": c.name, "toolUseId": c.call_id,
                                      "arguments": c.arguments, "result": c.result, "status": c.status}
                                     for c in t.tool_calls]} for t in session.turns]}


def session_spans(session: Session) -> list[dict[str, Any]]:
    """Minimal OTel-shaped span documents rebuilt from the session: an ``invoke_agent`` span per turn (its prompt
    and reply as ``gen_ai.input.messages``/``gen_ai.output.messages``) and an ``execute_tool`` span per call."""
    spans: list[dict[str, Any]] = []
    for turn in session.turns:
        spans.append({"traceId": turn.trace_id, "spanId": turn.root_span_id, "parentSpanId": None,
                      "name": "invoke_agent", "startTimeUnixNano": turn.start_ns, "endTimeUnixNano": turn.end_ns,
                      "attributes": {"session.id": session.session_id, "gen_ai.operation.name": "invoke_agent",
                                     "gen_ai.input.messages": json.dumps([{"role": "user", "content": turn.prompt}]),
                                     "gen_ai.output.messages": json.dumps(
                                         [{"role": "assistant", "content": turn.response}])}})
        for call in turn.tool_calls:
            arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
            spans.append({"traceId": call.trace_id, "spanId": call.span_id, "parentSpanId": turn.root_span_id,
                          "name": f"execute_tool {call.name}", "startTimeUnixNano": call.start_ns,
                          "attributes": {"session.id": session.session_id, "gen_ai.operation.name": "execute_tool",
                                         "gen_ai.tool.name": call.name, "gen_ai.tool.call.id": call.call_id,
                                         "gen_ai.tool.call.arguments": arguments,
                                         "gen_ai.tool.call.result": call.result},
                          "status": {"code": call.status}})
    return spans
