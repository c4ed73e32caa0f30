"""Our own rollouts (the ``rollouts`` table of a ``task: rollout`` suite) as a ``traces`` table, so the trace
evaluators read them like any recorded agent session.

Each rollout is a session (``session_id`` = the rollout id, ``service`` = its environment label, ``model`` = the
model). Each conversational turn of the agent is a trace: it starts with the agent's first model call after a
user message (the task's prompt, the simulated user's reply, or a user message an environment sends back) and
holds every model call and tool call until the next user message. A trace is an agent span (input = the
conversation the agent saw as JSON messages, output = its last reply), under it a model span per model call
(``llm``: the conversation sent, the reply, tokens) and a tool span per tool call (``tool``: name, call id,
arguments as the model wrote them, the result from the observations; status ERROR when the tool failed).

Ids are derived from the rollout id and the turn, so the same rollouts give the same table. Timings: the loop
records durations, not clock times, so spans are laid end to end in the loop's order (model call, the step's tool
calls sharing its latency, the user's reply), ending at ``clock()`` (``read_rollouts_source``: the file's
modification time); turns that carry ``started_at``/``ended_at`` (the older turn shape) are placed there. Every
span is at least 1 ns long, so start order is the loop's order. An errored rollout keeps its error: the last
turn's agent span (and the failing model or tool span) has status ERROR with the rollout's error, and a rollout
that failed before the agent spoke is one agent span with that error.

The ``turns``/``messages`` columns are read as ``agents/rollout.py`` writes them (documented at the top of
``tracking/rollout_traces.py``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.data.messages import leading_messages
from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.request import RolloutsSource
from eval_pipeline.traces.spans import Span, SpanKind, spans_frame

SCOPE = "eval_pipeline.agents.rollout"
REQUIRED_COLUMNS = ("rollout_id", "turns")
_ROLLOUT_FIELDS = ("sample_id", "sample_index", "reward", "success", "termination", "num_turns", "error",
                   "error_source")


def rollout_spans_frame(rollouts: pd.DataFrame, *, clock: Callable[[], float] | None = None,
                        source: str | None = None) -> pd.DataFrame:
    """The rollouts as a ``traces`` table (``source``: the file, named in errors and in each span's ``source``
    with the row number as its ``line``)."""
    spans: list[Span] = []
    for number, row in enumerate(rollouts.to_dict("records"), start=1):
        spans += rollout_spans(row, clock=clock, source=source, line=number)
    return spans_frame(spans)


def read_rollouts_source(source: RolloutsSource, *, root: Path | None = None, client: Any = None) -> pd.DataFrame:
    """The rollouts table at ``source.path`` as a ``traces`` table: a Parquet file, a folder of them (a suite's
    ``rollouts`` stage, one file per model partition) or a glob, relative paths from ``root``. A file's spans end
    at its modification time; filters are applied by ``traces.ingest``."""
    frames = [_read_file(path, shown) for path, shown in _rollout_files(source.path, root)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _rollout_files(given: str, root: Path | None) -> list[tuple[Path, str]]:
    """(path, the name errors and spans show) of each file ``given`` names; an error when it names none."""
    base = Path(root) if root is not None and not Path(given).is_absolute() else None
    full = base / given if base is not None else Path(given)
    if set("*?[") & set(given):
        found = sorted(Path(match) for match in glob.glob(str(full), recursive=True))
    elif full.is_dir():
        found = sorted(full.glob("*.parquet"))
    else:
        found = [full] if full.is_file() else []
    found = [path for path in found if path.is_file()]
    if not found:
        raise EvalInputError(f"no rollouts table at {full}", file=given, field="rollouts.path")
    return [(path, str(path.relative_to(base)) if base is not None and path.is_relative_to(base) else str(path))
            for path in found]


def _read_file(path: Path, shown: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
        raise EvalInputError(f"not a Parquet rollouts table: {exc}", file=shown, field="rollouts.path") from exc
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise EvalInputError(f"not a rollouts table: no column {', '.join(missing)}", file=shown,
                             field="rollouts.path")
    written = path.stat().st_mtime
    return rollout_spans_frame(frame, clock=lambda: written, source=shown)


def rollout_spans(row: Mapping[str, Any], *, clock: Callable[[], float] | None = None, source: str | None = None,
                  line: int | None = None) -> list[Span]:
    """The spans of one rollouts row, trace by trace (each trace's agent span first)."""
    rollout_id = str(_plain(row.get("rollout_id")))
    turns = [t for t in _json_list(row.get("turns"), "turns", rollout_id, source, line) if isinstance(t, Mapping)]
    reset = next((t["reset"] for t in turns if isinstance(t.get("reset"), Mapping)), None)
    if reset is not None:
        leading = [m for m in reset.get("messages") or () if isinstance(m, Mapping)]
        tools = [t.get("function", t).get("name") for t in reset.get("tools") or () if isinstance(t, Mapping)]
    else:
        leading = leading_messages(_json_list(row.get("messages"), "messages", rollout_id, source, line))
        tools = []
    walk = _Walk(row, rollout_id, leading, tools, _Clock(row, turns, clock), source, line)
    for turn in turns:
        walk.turn(turn)
    return walk.finish()


@dataclass
class _Trace:
    """One trace being built: its index, where it starts, what the agent saw, its spans and its last reply."""

    index: int
    start_ns: int
    seen: list[Mapping[str, Any]]
    spans: list[Span] = field(default_factory=list)
    reply: Mapping[str, Any] | None = None
    tokens_in: int = 0
    tokens_out: int = 0


class _Clock:
    """Where spans go: end to end, ending at ``clock()``; or at a turn's own ``started_at``."""

    def __init__(self, row: Mapping[str, Any], turns: list[Mapping[str, Any]],
                 clock: Callable[[], float] | None) -> None:
        timed = next((t for t in turns if t.get("started_at") is not None), None)
        self.end: int | None = None
        if timed is not None:
            self.cursor = _ns(timed["started_at"])
        else:
            recorded = sum(_ns(part.get("latency_s")) for t in turns
                           for part in (t.get(name) for name in ("agent", "step", "user", "final_step"))
                           if isinstance(part, Mapping))
            self.end = _ns((clock or time.time)())
            self.cursor = self.end - max(_ns(row.get("latency_s")), recorded)

    def span(self, nanoseconds: int) -> tuple[int, int]:
        """The next ``nanoseconds`` (at least 1) of the timeline."""
        began = self.cursor
        self.cursor += max(nanoseconds, 1)
        return began, self.cursor

    def skip(self, nanoseconds: int) -> None:
        """Time that is no span of the agent's (an environment step without tool calls, the user's reply)."""
        self.cursor += max(nanoseconds, 0)


class _Walk:
    """Walks a rollout's turns in the loop's order, cutting a new trace at each user message."""

    def __init__(self, row: Mapping[str, Any], rollout_id: str, leading: list[Mapping[str, Any]],
                 tools: list[Any], clock: _Clock, source: str | None, line: int | None) -> None:
        self.row, self.rollout_id, self.clock = row, rollout_id, clock
        self.conversation: list[Mapping[str, Any]] = list(leading)
        self.tools = json.dumps([name for name in tools if isinstance(name, str)]) if tools else None
        self.source, self.line = source, line
        self.traces: list[_Trace] = []
        self.new_prompt = True
        self.error = _plain(row.get("error"))

    def turn(self, turn: Mapping[str, Any]) -> None:
        if turn.get("started_at") is not None:
            self.clock.cursor = max(self.clock.cursor, _ns(turn["started_at"]))
        agent = turn.get("agent")
        message = agent.get("message") if isinstance(agent, Mapping) else None
        if isinstance(agent, Mapping):
            self._model_call(agent, message)
        steps = [turn[name] for name in ("step", "final_step") if isinstance(turn.get(name), Mapping)]
        if steps:
            first, seconds = steps[0].get("observations") or [], _ns(steps[0].get("latency_s"))
        else:  # the older shape: observations on the turn, timed by ended_at
            first = turn.get("observations") or []
            seconds = _ns(turn["ended_at"]) - self.clock.cursor if turn.get("ended_at") is not None else 0
        calls = (message.get("tool_calls") or []) if isinstance(message, Mapping) else []
        self._tool_calls(calls, [o for o in first if isinstance(o, Mapping)], seconds)
        self._hear(first)
        if isinstance(turn.get("user"), Mapping):
            user = turn["user"]
            self.clock.skip(_ns(user.get("latency_s")))
            if isinstance(user.get("message"), Mapping):
                self._hear([user["message"]])
        for later in steps[1:]:
            self.clock.skip(_ns(later.get("latency_s")))
            self._hear(later.get("observations") or [])

    def finish(self) -> list[Span]:
        if not self.traces:  # the rollout ended before the agent spoke: its whole time is that one span
            self.traces.append(_Trace(0, self.clock.cursor, list(self.conversation)))
            self.clock.cursor = max(self.clock.end or 0, self.clock.cursor + 1)
        spans = []
        for number, trace in enumerate(self.traces):
            last = number == len(self.traces) - 1
            spans.append(self._agent_span(trace, last))
            spans += trace.spans
        return spans

    def _hear(self, messages: Any) -> None:
        """Messages that join the conversation; a user message starts the agent's next turn."""
        for message in messages:
            if isinstance(message, Mapping):
                self.conversation.append(message)
                self.new_prompt = self.new_prompt or message.get("role") == "user"

    def _trace(self) -> _Trace:
        if self.new_prompt or not self.traces:
            self.traces.append(_Trace(len(self.traces), self.clock.cursor, list(self.conversation)))
            self.new_prompt = False
        return self.traces[-1]

    def _model_call(self, agent: Mapping[str, Any], message: Any) -> None:
        trace = self._trace()
        tokens_in, tokens_out = _int(agent.get("tokens_in")), _int(agent.get("tokens_out"))
        trace.tokens_in += tokens_in or 0
        trace.tokens_out += tokens_out or 0
        start, end = self.clock.span(_ns(agent.get("latency_s")))
        failed = _plain(agent.get("error"))
        trace.spans.append(self._span(
            trace, SpanKind.LLM, f"chat {_plain(self.row.get('model'))}", "chat", start, end,
            input=json.dumps(self.conversation, ensure_ascii=False),
            output=json.dumps([message], ensure_ascii=False) if isinstance(message, Mapping) else None,
            available_tools=self.tools, tokens_in=tokens_in, tokens_out=tokens_out,
            status="ERROR" if failed else "OK", status_message=str(failed) if failed else None,
            attributes=json.dumps({"cached": bool(agent.get("cached")), "request_hash": agent.get("request_hash")})))
        if isinstance(message, Mapping):
            self.conversation.append(message)
            trace.reply = message

    def _tool_calls(self, calls: list[Any], observations: list[Mapping[str, Any]], seconds: int) -> None:
        results = {o.get("tool_call_id"): o for o in observations if o.get("role") == "tool"}
        calls = [call for call in calls if isinstance(call, Mapping)]
        if not calls:
            self.clock.skip(seconds)
            return
        trace = self._trace()
        share, rest = divmod(max(seconds, 0), len(calls))
        for number, call in enumerate(calls):
            function = call.get("function", call)
            result = results.get(call.get("id"))
            start, end = self.clock.span(share + (rest if number == len(calls) - 1 else 0))
            if result is not None and result.get("is_error"):
                status, message = "ERROR", str(result.get("content") or "tool error")
            elif result is None and self.error is not None and _plain(self.row.get("error_source")) == "environment":
                status, message = "ERROR", str(self.error)  # the environment failed running it
            else:
                status, message = ("OK" if result is not None else "UNSET"), None
            arguments = function.get("arguments")
            trace.spans.append(self._span(
                trace, SpanKind.TOOL, f"execute_tool {function.get('name')}", "execute_tool", start, end,
                tool_name=function.get("name"), tool_call_id=call.get("id"),
                tool_args=arguments if isinstance(arguments, str) else json.dumps(arguments),
                output=None if result is None else _text(result), status=status, status_message=message))

    def _agent_span(self, trace: _Trace, last: bool) -> Span:
        ends = [s.end_ns for s in trace.spans if s.end_ns is not None] or [self.clock.cursor]
        failed = self.error if last else None
        outcome = {name: _plain(self.row.get(name)) for name in _ROLLOUT_FIELDS}
        model_tokens = any(s.kind == SpanKind.LLM for s in trace.spans)
        return self._span(
            trace, SpanKind.AGENT, "invoke_agent", "invoke_agent", trace.start_ns,
            max(max(ends), trace.start_ns + 1), span_id=self._id(trace.index, 0), parent_id=None,
            input=json.dumps(trace.seen, ensure_ascii=False),
            output=json.dumps([trace.reply], ensure_ascii=False) if trace.reply is not None else None,
            available_tools=self.tools, tokens_in=trace.tokens_in if model_tokens else None,
            tokens_out=trace.tokens_out if model_tokens else None,
            status="ERROR" if failed else "OK", status_message=str(failed) if failed else None,
            attributes=json.dumps({"rollout_id": self.rollout_id, "turn": trace.index, **outcome}, default=str))

    def _span(self, trace: _Trace, kind: SpanKind, name: str, operation: str, start: int, end: int,
              **fields: Any) -> Span:
        fields.setdefault("span_id", self._id(trace.index, len(trace.spans) + 1))
        fields.setdefault("parent_id", self._id(trace.index, 0))
        return Span(session_id=self.rollout_id, trace_id=self._trace_id(trace.index), kind=kind.value, name=name,
                    operation=operation, scope=SCOPE, service=_str(self.row.get("environment")),
                    model=_str(self.row.get("model")), start_ns=start, end_ns=end, has_body=True,
                    source=self.source, line=self.line if self.source is not None else None, **fields)

    def _trace_id(self, index: int) -> str:
        return hashlib.sha256(f"{self.rollout_id}\0{index}".encode()).hexdigest()[:32]

    def _id(self, index: int, ordinal: int) -> str:
        return hashlib.sha256(f"{self.rollout_id}\0{index}\0{ordinal}".encode()).hexdigest()[:16]


def _json_list(text: Any, column: str, rollout_id: str, source: str | None, line: int | None) -> list[Any]:
    if _plain(text) is None:
        return []
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EvalInputError(f"rollout {rollout_id!r}: not JSON: {exc}", file=source, line=line,
                             field=column) from exc
    if not isinstance(value, list):
        raise EvalInputError(f"rollout {rollout_id!r}: not a JSON list", file=source, line=line, field=column)
    return value


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _str(value: Any) -> str | None:
    value = _plain(value)
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    value = _plain(value)
    return None if value is None else int(value)


def _ns(seconds: Any) -> int:
    seconds = _plain(seconds)
    return 0 if seconds is None else round(float(seconds) * 1e9)
