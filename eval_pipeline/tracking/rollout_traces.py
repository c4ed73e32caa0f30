"""Each rollout as an MLflow trace in the model's run, so MLflow's trace view shows the agent's turns.

One trace per row of the rollouts table: a root span ``rollout`` (type AGENT; inputs: task, model, environment,
group member; outputs: reward, success, termination, turns, error and its source), and under it, in order, a span
per model call (type CHAT_MODEL, ``model_call_<turn>``; inputs ``{"messages": [...]}`` = the conversation up to
that call, outputs = the assistant message, ``mlflow.chat.tokenUsage``, the offered tools in ``mlflow.chat.tools``),
a span per tool call (type TOOL, named after the tool; inputs = its arguments, outputs = its result, status ERROR
when the tool failed) and a span per simulated-user reply (type CHAT_MODEL, ``user_simulator``; its tokens are not
the model's, so they stay out of ``mlflow.chat.tokenUsage`` and the trace's token usage). Messages are written in
OpenAI's chat shape (``tool_calls[].function``), which MLflow's chat view renders. The trace carries the tags
``rollout_id``, ``sample_id``, ``sample_index``, ``model``, ``environment`` and ``termination``, and
``mlflow.sourceRun`` = the run, so ``mlflow.search_traces(run_id=...)`` finds it; the rollout's scores (reward,
success) and judgments are its ``Feedback`` assessments, as ``item_traces`` makes them.

The ``turns`` column this reads is the JSON list the rollout loop (``agents/rollout.py``) writes::

    [{"turn": 0, "reset": {"messages": [<ChatMessage.to_dict()>...], "tools": [<ToolSpec.to_dict()>...]},
      "user": {...}},                                   # "user" only when the simulated user speaks first
     {"turn": n,                                        # n = 1, 2, ...: one agent turn
      "agent": {"message": <ChatMessage.to_dict()> | null, "latency_s", "tokens_in", "tokens_out", "cached",
                "request_hash", "error", "reward", "done"},
      "step": {"observations": [<ChatMessage.to_dict()>...], "reward", "done", "info", "latency_s"},
      "user": {"message": <ChatMessage.to_dict()> | null, "stop", "latency_s", "tokens_in", "tokens_out",
               "cached", "request_hash", "error"},     # the simulated user's reply, when it answered
      "final_step": {...same as "step"...}},           # the environment's answer to the user's stop marker
     ...]

It also reads the shape first agreed for it: ``{"index", "agent": {...}, "observations": [...], "reward", "done",
"started_at", "ended_at"}`` per turn (epoch seconds). Tool calls are the agent message's ``tool_calls``; their
results are the observations with role ``tool`` whose ``tool_call_id`` answers them.

Timing: the loop records durations, not clock times, so the spans are laid end to end in the loop's order (model
call, the step's tools sharing its ``latency_s`` evenly, the user's reply), starting ``latency_s`` (the row's, or
the recorded durations' sum when larger) before ``clock()`` (the logging time); turns that carry
``started_at``/``ended_at`` are placed there instead.

Spans are built as finished spans and written straight to the store of ``tracking_uri`` (the tracking store's span
table where it has one, else the trace's artifact), so no global MLflow state (tracing provider, tracking URI,
active run or experiment) is read or left behind. Trace ids are derived from the run and the rollout id, and a
rollout already traced in the run is skipped, so logging again after a resume adds no duplicates.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval_pipeline.data.messages import leading_messages
from eval_pipeline.tracking.chat_shape import openai_message as _openai_message
from eval_pipeline.tracking.item_traces import item_assessments, item_key
from eval_pipeline.tracking.mlflow_log import tracking_client
from eval_pipeline.tracking.trace_store import FinishedSpan, store_traces, traced_tag_values
from eval_pipeline.tracking.trace_store import plain as _plain
from eval_pipeline.tracking.trace_store import trace_json as _dumps

ROOT_SPAN_NAME = "rollout"
ROLLOUT_ID_TAG = "rollout_id"
TRACE_TAGS = ("rollout_id", "sample_id", "sample_index", "model", "environment", "termination")
_PREVIEW_CHARS = 1000
_METADATA_CHARS = 250


@dataclass
class SpanRecord:
    """One span of a rollout's trace, before it becomes an MLflow span; ``parent`` is the index of its parent in
    the list (None for the root)."""

    name: str
    span_type: str
    start_s: float
    end_s: float
    inputs: Any
    outputs: Any
    parent: int | None = 0
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def rollout_spans(row: Mapping[str, Any], *, clock: Callable[[], float] | None = None) -> list[SpanRecord]:
    """The spans of one rollouts row: the root first, then its model calls, tool calls and user replies in order.

    Raises ValueError naming the rollout when ``turns`` or ``messages`` is not the JSON described above.
    """
    rollout_id = row.get("rollout_id")
    turns = [turn for turn in _json_list(row.get("turns"), "turns", rollout_id) if isinstance(turn, Mapping)]
    reset = next((turn["reset"] for turn in turns if isinstance(turn.get("reset"), Mapping)), None)
    leading = reset.get("messages") or [] if reset else leading_messages(
        _json_list(row.get("messages"), "messages", rollout_id))
    timeline = _Timeline(row, turns, clock)
    builder = _Builder([_openai_message(m) for m in leading], _openai_tools(reset.get("tools") if reset else None))
    for turn in turns:
        builder.turn(turn, timeline)
    root = SpanRecord(
        name=ROOT_SPAN_NAME, span_type="AGENT", start_s=timeline.start, end_s=max(timeline.end, timeline.cursor),
        parent=None,
        inputs={key: _plain(row.get(key)) for key in ("sample_id", "sample_index", "model", "environment")},
        outputs={key: _plain(row.get(key)) for key in ("reward", "success", "termination", "num_turns", "error",
                                                       "error_source")},
        error=_plain(row.get("error")),
        attributes={"rollout_id": rollout_id, "tokens_in": _plain(row.get("tokens_in")),
                    "tokens_out": _plain(row.get("tokens_out")), "cached": _plain(row.get("cached"))})
    return [root, *builder.spans]


def log_rollout_traces(rollouts: pd.DataFrame, *, tracking_uri: str, run_id: str,
                       clock: Callable[[], float] | None = None, scores: pd.DataFrame | None = None,
                       judgments: pd.DataFrame | None = None) -> list[str]:
    """Log each row of ``rollouts`` as a trace in run ``run_id`` (its experiment) and return the new trace ids;
    rollouts already traced in that run are skipped. The rollout's rows of ``scores`` and ``judgments`` (same
    ``sample_id`` and ``sample_index``) become its trace's ``Feedback`` assessments (``item_traces``)."""
    from mlflow.tracing.client import TracingClient

    client = tracking_client(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    tracing = TracingClient(tracking_uri)
    done = set(traced_tag_values(client, experiment_id, run_id, ROLLOUT_ID_TAG))
    assessments = item_assessments(scores, judgments, run_id=run_id)
    pending = []
    for row in rollouts.to_dict("records"):
        if row.get("rollout_id") in done:
            continue
        found = assessments.get(item_key(row.get("sample_id"), row.get("sample_index")), [])
        pending.append(_trace(experiment_id, run_id, row, rollout_spans(row, clock=clock), found))
        done.add(row.get("rollout_id"))
    return store_traces(tracing, experiment_id, pending)  # in bulk: one transaction for all on a SQL store


class _Timeline:
    """Where each span goes: end to end from ``latency_s`` before ``clock()``, or at a turn's own clock times."""

    def __init__(self, row: Mapping[str, Any], turns: list[Mapping[str, Any]],
                 clock: Callable[[], float] | None) -> None:
        timed = [turn for turn in turns if turn.get("started_at") is not None and turn.get("ended_at") is not None]
        if timed:
            self.start, self.end = float(timed[0]["started_at"]), float(timed[-1]["ended_at"])
        else:
            self.end = (clock or time.time)()
            self.start = self.end - max(_number(row.get("latency_s"), 0.0), _recorded_seconds(turns))
        self.cursor = self.start

    def span(self, seconds: float) -> tuple[float, float]:
        """The next ``seconds`` of the timeline."""
        began = self.cursor
        self.cursor += max(seconds, 0.0)
        return began, self.cursor


def _recorded_seconds(turns: list[Mapping[str, Any]]) -> float:
    """The durations the turns record, summed (reported latencies may exceed the row's wall time, e.g. a cached
    call reporting its first latency)."""
    parts = (turn.get(name) for turn in turns for name in ("agent", "step", "user", "final_step"))
    return sum(_number(part.get("latency_s"), 0.0) for part in parts if isinstance(part, Mapping))


class _Builder:
    """Walks the turns in the loop's order, keeping the conversation so far."""

    def __init__(self, history: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> None:
        self.history, self.tools = history, tools
        self.spans: list[SpanRecord] = []

    def turn(self, turn: Mapping[str, Any], timeline: _Timeline) -> None:
        index = turn.get("turn", turn.get("index", 0))
        if turn.get("started_at") is not None:
            timeline.cursor = float(turn["started_at"])
        agent = turn.get("agent")
        message = agent.get("message") if isinstance(agent, Mapping) else None
        if isinstance(agent, Mapping):
            self._model_call(index, agent, timeline)
        steps = [turn[name] for name in ("step", "final_step") if isinstance(turn.get(name), Mapping)]
        observations = [o for o in turn.get("observations") or () if isinstance(o, Mapping)]
        first = steps[0].get("observations") or [] if steps else observations
        if turn.get("ended_at") is not None:
            step_seconds = float(turn["ended_at"]) - timeline.cursor
        else:
            step_seconds = _number(steps[0].get("latency_s"), 0.0) if steps else 0.0
        self._tool_calls(index, (message or {}).get("tool_calls") or (), first, step_seconds, timeline)
        self.history.extend(_openai_message(o) for o in first if isinstance(o, Mapping))
        if isinstance(turn.get("user"), Mapping):
            self._user(turn["user"], timeline)
        for later in steps[1:]:
            timeline.span(_number(later.get("latency_s"), 0.0))
            self.history.extend(_openai_message(o) for o in later.get("observations") or () if isinstance(o, Mapping))

    def _model_call(self, index: Any, agent: Mapping[str, Any], timeline: _Timeline) -> None:
        tokens_in, tokens_out = int(_number(agent.get("tokens_in"), 0)), int(_number(agent.get("tokens_out"), 0))
        reply = _openai_message(agent["message"]) if agent.get("message") else None
        start, end = timeline.span(_number(agent.get("latency_s"), 0.0))
        self.spans.append(SpanRecord(
            name=f"model_call_{index}", span_type="CHAT_MODEL", start_s=start, end_s=end,
            inputs={"messages": list(self.history)}, outputs=reply, error=agent.get("error"),
            attributes={"mlflow.chat.tokenUsage": {"input_tokens": tokens_in, "output_tokens": tokens_out,
                                                   "total_tokens": tokens_in + tokens_out},
                        "mlflow.chat.tools": self.tools, "cached": bool(agent.get("cached")),
                        "request_hash": agent.get("request_hash"), "turn": index}))
        if reply is not None:
            self.history.append(reply)

    def _tool_calls(self, index: Any, calls: Any, observations: list[Any], seconds: float,
                    timeline: _Timeline) -> None:
        results = {o.get("tool_call_id"): o for o in observations if isinstance(o, Mapping) and o.get("role") == "tool"}
        share = seconds / len(calls) if calls else seconds
        if not calls:
            timeline.span(seconds)
        for call in calls:
            function = call.get("function", call)
            result = results.get(call.get("id"))
            start, end = timeline.span(share)
            failed = result is not None and result.get("is_error")
            self.spans.append(SpanRecord(
                name=str(function.get("name")), span_type="TOOL", start_s=start, end_s=end,
                inputs=_arguments(function.get("arguments")),
                outputs=None if result is None else result.get("content"),
                error=(result.get("content") or "tool error") if failed else None,
                attributes={"tool_call_id": call.get("id"), "turn": index}))

    def _user(self, user: Mapping[str, Any], timeline: _Timeline) -> None:
        reply = _openai_message(user["message"]) if user.get("message") else None
        start, end = timeline.span(_number(user.get("latency_s"), 0.0))
        self.spans.append(SpanRecord(
            name="user_simulator", span_type="CHAT_MODEL", start_s=start, end_s=end,
            inputs={"messages": list(self.history)}, outputs=reply, error=user.get("error"),
            attributes={"tokens_in": user.get("tokens_in"), "tokens_out": user.get("tokens_out"),
                        "cached": bool(user.get("cached")), "request_hash": user.get("request_hash"),
                        "stop": bool(user.get("stop"))}))
        if reply is not None:
            self.history.append(reply)


def _trace(experiment_id: str, run_id: str, row: Mapping[str, Any], records: list[SpanRecord],
           assessments: list[Any]) -> tuple[Any, list[FinishedSpan]]:
    """The rollout's TraceInfo (with its assessments) and finished spans."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY, TraceTagKey
    from mlflow.tracing.constant import TraceMetadataKey as Key

    digest = hashlib.sha256(f"{run_id}\0{row.get('rollout_id')}".encode()).hexdigest()
    trace_id = f"tr-{digest[:32]}"
    for assessment in assessments:
        assessment.trace_id = trace_id
    spans = [_finished_span(trace_id, records, index) for index in range(len(records))]
    root = records[0]
    tokens_in, tokens_out = int(_number(row.get("tokens_in"), 0)), int(_number(row.get("tokens_out"), 0))
    tags = {key: str(_plain(row.get(key))) for key in TRACE_TAGS if _plain(row.get(key)) is not None}
    tags[TraceTagKey.TRACE_NAME] = ROOT_SPAN_NAME
    metadata = {TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION), Key.SOURCE_RUN: run_id,
                Key.INPUTS: _dumps(root.inputs)[:_METADATA_CHARS], Key.OUTPUTS: _dumps(root.outputs)[:_METADATA_CHARS],
                Key.TOKEN_USAGE: json.dumps({"input_tokens": tokens_in, "output_tokens": tokens_out,
                                             "total_tokens": tokens_in + tokens_out})}
    info = TraceInfo(
        trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=int(root.start_s * 1000), execution_duration=round((root.end_s - root.start_s) * 1000),
        state=TraceState.ERROR if root.error else TraceState.OK,
        request_preview=_dumps(root.inputs)[:_PREVIEW_CHARS], response_preview=_dumps(root.outputs)[:_PREVIEW_CHARS],
        trace_metadata=metadata, tags=tags, assessments=list(assessments))
    return info, spans


def _finished_span(trace_id: str, records: list[SpanRecord], index: int) -> FinishedSpan:
    record = records[index]
    return FinishedSpan(
        span_id=_span_id(trace_id, index),
        parent_id=None if record.parent is None else _span_id(trace_id, record.parent), name=record.name,
        span_type=record.span_type, start_ns=int(record.start_s * 1e9), end_ns=int(record.end_s * 1e9),
        inputs=record.inputs, outputs=record.outputs, error=record.error, attributes=record.attributes)


def _span_id(trace_id: str, index: int) -> int:
    return int(hashlib.sha256(f"{trace_id}\0{index}".encode()).hexdigest()[:16], 16) or 1


def _openai_tools(tools: Any) -> list[dict[str, Any]] | None:
    """The offered tools in OpenAI's shape, as ``mlflow.chat.tools`` wants them."""
    if not tools:
        return None
    return [tool if tool.get("type") == "function" else {"type": "function", "function": dict(tool)}
            for tool in tools if isinstance(tool, Mapping)]


def _arguments(arguments: Any) -> Any:
    """A tool call's arguments as an object when they parse as one, else the text the model wrote."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments or "{}")
        except ValueError:
            return arguments
        return parsed if isinstance(parsed, dict) else arguments
    return arguments


def _json_list(text: Any, column: str, rollout_id: Any) -> list[Any]:
    if _plain(text) is None:
        return []
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rollout {rollout_id!r}: column {column!r} is not JSON: {exc}") from exc
    if not isinstance(value, list):
        raise ValueError(f"rollout {rollout_id!r}: column {column!r} is not a JSON list")
    return value


def _number(value: Any, default: float) -> float:
    value = _plain(value)
    return default if value is None else float(value)
