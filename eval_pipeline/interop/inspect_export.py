"""A suite's run as Inspect AI logs: one ``.eval`` file per model, written by Inspect's own ``write_eval_log`` so that
``inspect view`` browses it.

Each item a model has a row for (``sample_id`` × ``sample_index``; a traces suite's item is a session) is one
``EvalSample``: ``id`` = the item's ``sample_id``, ``epoch`` = ``sample_index`` + 1, the dataset's input, target and
choices, the conversation as ``messages`` (a rollout's or a session's tool calls and results included), the final
reply as ``output``, a failed generation or rollout as the sample's ``error``, and one ``Score`` per scorer and judge
metric (``value``: the score, NaN when it errored; ``answer``: what the scorer extracted or the judge's label;
``explanation``: the judge's explanation or the error; ``metadata``: error, label, judge model). Several rows of one
metric for one item (trace-level evaluators of a session) give a list ``value``. The log's ``results`` hold the
metrics table: one ``EvalScore`` per metric with its ``value``, ``stderr``, ``ci_low``, ``ci_high`` and one entry per
breakdown value. The task is the suite, the model the model's name as the tables hold it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.data.inspect_logs import inspect_api
from eval_pipeline.report.conversations import CONVERSATION_VIEWS
from eval_pipeline.report.tables import ModelTables, SuiteTables

KEY = ["sample_id", "sample_index"]
STOP_REASONS = {"stop": "stop", "length": "max_tokens", "max_tokens": "max_tokens", "tool_calls": "tool_calls",
                "content_filter": "content_filter", "end_turn": "stop", "stop_sequence": "stop"}
"""Our ``finish_reason`` → Inspect's ``StopReason`` (any other: ``unknown``)."""


def write_suite_logs(tables: SuiteTables, folder: str | Path, *, created: datetime | None = None) -> dict[str, str]:
    """Each model's log written as ``<folder>/<suite>_<model>.eval`` (a local folder, or a URI Inspect writes to);
    model → its path."""
    api = inspect_api()
    folder = str(folder)
    if "://" not in folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    written = {}
    for model in tables.models:
        path = f"{folder.rstrip('/')}/{tables.suite.suite}_{model.model}.eval"
        api.write_eval_log(model_log(tables, model, created=created), path, format="eval")
        written[model.model] = path
    return written


def logs_location(outputs: str, suite: str) -> str:
    """``<outputs>/<suite>/inspect``: beside the suite's stage folders (a local path or a URI)."""
    return f"{outputs.rstrip('/')}/{suite}/inspect"


def model_log(tables: SuiteTables, model: ModelTables, *, created: datetime | None = None) -> Any:
    """One model's run as an ``inspect_ai.log.EvalLog``."""
    api = inspect_api()
    from inspect_ai.model import GenerateConfig

    suite = tables.suite
    when = (created or datetime.now(UTC)).isoformat()
    spec = next((m for m in suite.models if m.name == model.model), None)
    dataset = tables.samples.drop_duplicates("sample_id") if "sample_id" in tables.samples else tables.samples.iloc[:0]
    by_id = {str(row["sample_id"]): row for row in dataset.to_dict("records")}
    samples = [_sample(by_id.get(item["key"][0], {}), model.model, item) for item in _items(tables, model)]
    ids = list(dict.fromkeys(str(s.id) for s in samples))
    gen = suite.generation
    dataset_uri = getattr(getattr(suite, "dataset", None), "uri", None)
    digest = _digest(suite.suite, model.model, when)
    eval_spec = api.EvalSpec(
        eval_id=digest[:22], run_id=_digest(digest, "run")[:22], created=when, task=suite.suite,
        task_id=_digest(suite.suite)[:22], task_description=suite.description or None,
        dataset=api.EvalDataset(name=suite.suite, location=dataset_uri, samples=len(ids), sample_ids=ids),
        model=model.model,
        model_args={k: v for k, v in {"backend": getattr(spec, "backend", None), "model": getattr(spec, "model", None)
                                      }.items() if v is not None},
        model_generate_config=GenerateConfig(max_tokens=gen.max_tokens, temperature=gen.temperature,
                                             top_p=gen.top_p, seed=gen.seed, stop_seqs=list(gen.stop) or None),
        config=api.EvalConfig(epochs=max((s.epoch for s in samples), default=1)),
        metadata={"task_kind": suite.task, "production_stage": tables.production_stage,
                  "judge_model": _judge_name(suite), "dagster_run_id": model.run.dagster_run_id,
                  "mlflow_run_id": model.run.mlflow_run_id, "exported_by": "eval_pipeline"})
    errored = sum(1 for s in samples if s.error is not None)
    results = api.EvalResults(total_samples=len(samples), completed_samples=len(samples) - errored,
                              scores=_eval_scores(model.metrics))
    return api.EvalLog(status="success", eval=eval_spec, results=results, samples=samples)


def _items(tables: SuiteTables, model: ModelTables) -> list[dict[str, Any]]:
    """Per item key: its production row (output, error, info, conversation), score rows and judgment rows."""
    view = CONVERSATION_VIEWS.get(tables.production_stage)
    grouped = view is not None and view.by_session
    items: dict[tuple[str, int], dict[str, Any]] = {}

    def item(sample_id: Any, index: Any) -> dict[str, Any]:
        key = (str(sample_id), 0 if grouped or index is None or index != index else int(index))
        return items.setdefault(key, {"key": key, "produced": None, "results": []})

    produced = model.produced
    if produced is not None and len(produced):
        rows = view.rows(produced) if view is not None else _generation_rows(produced)
        for row in rows.to_dict("records"):
            item(row["sample_id"], row["sample_index"])["produced"] = row
    for frame, column, judged in ((model.scores, "scorer", False), (model.judgments, "metric", True)):
        if frame is None or not len(frame):
            continue
        id_column = "sample_id" if "sample_id" in frame.columns else "session_id"
        indexes = frame["sample_index"] if "sample_index" in frame.columns else [0] * len(frame)
        for row, sample_id, index in zip(frame.to_dict("records"), frame[id_column], indexes, strict=True):
            item(sample_id, index)["results"].append((str(row[column]), judged, row))
    order = {sample_id: i for i, sample_id in enumerate(tables.samples["sample_id"].tolist())}
    return [items[key] for key in sorted(items, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))]


def _generation_rows(produced: pd.DataFrame) -> pd.DataFrame:
    """The answers table (``generations``) as the conversation views' rows."""
    frame = produced.copy()
    frame["sample_index"] = frame["sample_index"].fillna(0) if "sample_index" in frame else 0
    for column in ("output", "error", "finish_reason", "tokens_in", "tokens_out"):
        if column not in frame:
            frame[column] = None
    frame["conversation"] = None
    return frame


def _sample(source: Mapping[str, Any], model: str, item: Mapping[str, Any]) -> Any:
    """One item as an ``EvalSample``: ``source`` is its row of the samples table ({} when it has none)."""
    api = inspect_api()
    from inspect_ai.model import ModelOutput, ModelUsage

    sample_id, index = item["key"]
    produced = item["produced"] or {}
    text_input, input_messages = _input(source)
    output, error = _text(produced.get("output")), _text(produced.get("error"))
    conversation = produced.get("conversation")
    messages = (list(conversation) if conversation is not None else
                [*input_messages, *([{"role": "assistant", "content": output}] if output is not None else [])])
    stop = STOP_REASONS.get(str(produced.get("finish_reason")), "unknown")
    model_output = ModelOutput.from_content(model, output or "", stop_reason=stop, error=error)
    tokens_in, tokens_out = _count(produced.get("tokens_in")), _count(produced.get("tokens_out"))
    if tokens_in is not None or tokens_out is not None:
        model_output.usage = ModelUsage(input_tokens=tokens_in or 0, output_tokens=tokens_out or 0,
                                        total_tokens=(tokens_in or 0) + (tokens_out or 0))
    metadata = _json_object(source.get("metadata"))
    metadata |= {k: v for k, v in {"sample_index": index, "category": _text(source.get("category")),
                                  "info": _text(produced.get("info")),
                                  "request_hash": _text(produced.get("request_hash"))}.items() if v is not None}
    choices = _json_list(source.get("choices"))
    return api.EvalSample(
        id=sample_id, epoch=index + 1,
        input=text_input if text_input is not None else _inspect_messages(input_messages),
        target=_text(source.get("reference")) or "", choices=[str(c) for c in choices] or None,
        messages=_inspect_messages(messages), output=model_output, scores=_scores(item["results"]) or None,
        metadata=metadata,
        error=api.EvalError(message=error, traceback="", traceback_ansi="") if error is not None else None)


def _input(source: Mapping[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The item's input: text (and one user message), or its chat messages (text None)."""
    text = _text(source.get("input"))
    if source.get("input_kind") == "messages" and text is not None:
        messages = [m for m in _json_list(text) if isinstance(m, dict)]
        return None, messages
    return text or "", [{"role": "user", "content": text}] if text else []


def _scores(results: Iterable[tuple[str, bool, Mapping[str, Any]]]) -> dict[str, Any]:
    """One Inspect ``Score`` per scorer / judge metric (a judge metric named like a scorer gets ``judge:``)."""
    from inspect_ai.scorer import Score

    results = list(results)
    grouped: dict[str, list[tuple[bool, Mapping[str, Any]]]] = {}
    scorers = {name for name, judged, _ in results if not judged}
    for name, judged, row in results:
        grouped.setdefault(f"judge:{name}" if judged and name in scorers else name, []).append((judged, row))
    found = {}
    for name, rows in grouped.items():
        values = [_float(row.get("score")) for _, row in rows]
        judged = rows[0][0]
        answers = [_text(row.get("label" if judged else "extracted")) for _, row in rows]
        errors = [_text(row.get("error")) for _, row in rows]
        explanations = [_text(row.get("explanation")) if judged else None for _, row in rows]
        explanations = [text if text is not None else problem for text, problem in zip(explanations, errors,
                                                                                        strict=True)]
        metadata = {"error": _strings(errors), "kind": "judge" if judged else "scorer"}
        if judged:
            metadata |= {"label": _strings(answers), "judge_model": _text(rows[0][1].get("judge_model"))}
        scored = [math.nan if value is None else value for value in values]
        found[name] = Score(value=scored[0] if len(scored) == 1 else scored, answer=_joined(answers),
                            explanation=_joined(explanations),
                            metadata={k: v for k, v in metadata.items() if v is not None})
    return found


def _eval_scores(metrics: pd.DataFrame | None) -> list[Any]:
    """The metrics table as ``EvalScore`` objects: overall value, stderr and interval; one entry per breakdown."""
    api = inspect_api()
    if metrics is None or not len(metrics):
        return []
    scores: dict[str, Any] = {}
    frame = metrics.assign(_overall=metrics["breakdown_key"].isna()).sort_values("_overall", ascending=False,
                                                                                  kind="stable")
    names = frame.loc[frame["_overall"], "metric"].astype(str)
    repeated = set(names[names.duplicated()])
    for row in frame.to_dict("records"):
        k = _count(row.get("k"))
        name = f"{row['metric']}[k={k}]" if str(row["metric"]) in repeated and k is not None else str(row["metric"])
        params = {key: value for key, value in {"k": k, "ci_method": _text(row.get("ci_method"))}.items()
                  if value is not None}
        if row["_overall"]:
            entries = {"value": row.get("value"), "stderr": row.get("stderr"), "ci_low": row.get("ci_low"),
                       "ci_high": row.get("ci_high")}
            scores[name] = api.EvalScore(
                name=name, scorer=str(row["metric"]), scored_samples=_count(row.get("n")),
                unscored_samples=_count(row.get("errors")), params=params,
                metrics={key: api.EvalMetric(name=key, value=float(value)) for key, value in entries.items()
                         if _float(value) is not None})
            continue
        score = scores.get(name)
        value = _float(row.get("value"))
        if score is None or value is None:
            continue
        label = f"{row['breakdown_key']}={row['breakdown_value']}"
        score.metrics[label] = api.EvalMetric(name=label, group=str(row["breakdown_key"]), value=value,
                                              metadata={"n": _count(row.get("n")), "errors": _count(row.get("errors"))})
    return list(scores.values())


def _inspect_messages(messages: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Our chat messages (``data.messages`` or the report's shape) as Inspect's, each tool result tied to its call
    (a call without an id gets one; a result without ``tool_call_id`` answers the oldest open call of its tool)."""
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageTool, ChatMessageUser
    from inspect_ai.tool import ToolCall, ToolCallError

    built: list[Any] = []
    open_calls: list[tuple[Any, bool]] = []  # (the call, whether its id was made up here)
    for number, message in enumerate(messages):
        role, content = message.get("role"), _content(message)
        if role == "assistant":
            calls = []
            for position, call in enumerate(message.get("tool_calls") or []):
                inner = call.get("function", call) if isinstance(call, dict) else {}
                call_id = _text(call.get("id")) if isinstance(call, dict) else None
                arguments, problem = _arguments(inner.get("arguments"))
                calls.append(ToolCall(id=call_id or f"call_{number}_{position}",
                                      function=str(inner.get("name") or "?"), arguments=arguments,
                                      parse_error=problem))
                open_calls.append((calls[-1], call_id is None))
            built.append(ChatMessageAssistant(content=content, tool_calls=calls or None))
        elif role == "tool":
            call_id, name = _text(message.get("tool_call_id")), _text(message.get("name"))
            match = next((c for c in open_calls if c[0].id == call_id), None) or next(
                (c for c in open_calls if c[1] and c[0].function == name), None) or next(
                (c for c in open_calls if c[1]), None)
            if match is not None:
                open_calls.remove(match)
                if match[1] and call_id is not None:
                    match[0].id = call_id  # the result names the call the table left without an id
            answered = match[0] if match is not None else None
            built.append(ChatMessageTool(content=content, tool_call_id=answered.id if answered else call_id,
                                         function=name or (answered.function if answered else None),
                                         error=ToolCallError(type="unknown", message=content)
                                         if message.get("is_error") else None))
        elif role == "system":
            built.append(ChatMessageSystem(content=content))
        else:
            built.append(ChatMessageUser(content=content))
    return built


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = message.get("parts") or (content if isinstance(content, list) else [])
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _arguments(value: Any) -> tuple[dict[str, Any], str | None]:
    """Tool-call arguments as an object, and the parse error when the model's JSON text is not one."""
    if isinstance(value, dict):
        return value, None
    try:
        parsed = json.loads(value or "{}")
    except (TypeError, ValueError) as problem:
        return {}, f"arguments are not JSON: {problem}"
    return (parsed, None) if isinstance(parsed, dict) else ({}, f"arguments are not a JSON object: {value!r}")


def _judge_name(suite: Any) -> str | None:
    judge = getattr(suite, "judge", None)
    return f"{judge.model.backend}:{judge.model.model}" if judge is not None else None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _float(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _count(value: Any) -> int | None:
    return None if _missing(value) else int(value)


def _strings(values: list[str | None]) -> str | list[str | None] | None:
    """One row's text as is, several rows' as a list; None when no row has one."""
    if all(value is None for value in values):
        return None
    return values[0] if len(values) == 1 else values


def _joined(values: list[str | None]) -> str | None:
    present = [v for v in values if v is not None]
    return "\n".join(present) if present else None


def _json_list(value: Any) -> list[Any]:
    if not isinstance(value, str):
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
