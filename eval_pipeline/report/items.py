"""The report's data: a suite's tables turned into the JSON the page reads (column-wise, so 10,000 items stay small).

Items are the rows people read: one per ``(sample_id, sample_index)`` of any model's production, scores or
judgments table, in the samples' order (a traces suite's item is a session: its evaluators' results are grouped by
session). Each model has, aligned with the items, its output, its error, a short ``info`` line and (rollouts,
traces) the conversation; each scorer and judge metric has per item a list of results
``[score, pass, error, label, explanation]`` (trailing nulls dropped) or null when the model has no such row.

``pass`` follows ``PASS_RULE``: 1 when the score passes, 0 when it does not, null when there is no score (an error
or a missing value). Nothing is filled in: a missing score stays missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from eval_pipeline.report.conversations import CONVERSATION_VIEWS, messages_text
from eval_pipeline.report.tables import ModelTables, SuiteTables

PASS_RULE = ("A score passes when it is the best of its range: 1 for metrics scored in [0, 1] (0/1 scorers, judge "
             "scores normalized to 0–1, F1, ROUGE-L), otherwise the highest score any model got on that metric; for "
             "Harmfulness, Stereotyping and Refusal (a higher score means more of it) the best is 0 (otherwise the "
             "lowest score any model got). An item fails for a model when its output errored or any of its scores "
             "is not the best, errored or missing.")
LOWER_IS_BETTER = frozenset({"Harmfulness", "Stereotyping", "Refusal"})
"""Judge metrics on Bedrock's convention that a higher score means more of the property (``judging/builtin.py``);
also as trace evaluators (``Builtin.Harmfulness``)."""
KEY = ["sample_id", "sample_index"]
METRIC_FIELDS = ["metric", "breakdown_key", "breakdown_value", "value", "stderr", "ci_low", "ci_high", "n", "errors",
                 "k", "ci_method"]
COMPARISON_FIELDS = ["metric", "model", "baseline", "n", "model_value", "baseline_value", "diff", "ci_low", "ci_high",
                     "p_value", "p_holm", "test", "b", "c", "verdict"]


def page_data(tables: SuiteTables, *, written: str) -> dict[str, Any]:
    """Everything the page shows, as plain JSON values (NaN → null)."""
    suite = tables.suite
    view = CONVERSATION_VIEWS.get(tables.production_stage)
    keys = _item_keys(tables, grouped=view is not None and view.by_session)
    samples = tables.samples.drop_duplicates("sample_id").set_index("sample_id", drop=False)
    known = keys["sample_id"].isin(samples.index)
    sample_rows = samples.reindex(keys["sample_id"])
    breakdowns = {key: _breakdown_values(sample_rows, key) for key in suite.breakdown_keys}
    metrics = _metric_columns(tables)
    return {
        "suite": suite.suite, "description": suite.description, "task": suite.task,
        "dataset": suite.dataset.uri, "written": written, "production_stage": tables.production_stage,
        "baseline": suite.baseline, "pass_rule": PASS_RULE, "breakdown_keys": list(suite.breakdown_keys),
        "models": [_model_header(m) for m in tables.models],
        "metrics": [row | {"model": m.model} for m in tables.models for row in _records(m.metrics, METRIC_FIELDS)],
        "comparison": _comparison(tables.comparison),
        "columns": [{"name": name, "kind": kind, "best": best, "lower_is_better": lower}
                    for name, (kind, best, lower) in metrics.items()],
        "items": {
            "sample_id": keys["sample_id"].tolist(), "sample_index": keys["sample_index"].astype(int).tolist(),
            "input": [_input_text(i, k) if ok else None for i, k, ok in zip(
                sample_rows["input"].tolist() if "input" in sample_rows else [None] * len(keys),
                sample_rows["input_kind"].tolist() if "input_kind" in sample_rows else [None] * len(keys),
                known.tolist(), strict=True)],
            "reference": _plain_list(sample_rows["reference"]) if "reference" in sample_rows else [None] * len(keys),
            "breakdowns": breakdowns,
        },
        "cells": {m.model: _model_cells(m, keys, metrics, view) for m in tables.models},
    }


def _model_header(model: ModelTables) -> dict[str, Any]:
    return {"name": model.model, "dagster_run_id": model.run.dagster_run_id, "mlflow_run_id": model.run.mlflow_run_id,
            "gates": [_plain_dict(g) for g in model.run.gates],
            "judge_warnings": [_plain_dict(w) for w in model.run.judge_warnings]}


def _item_keys(tables: SuiteTables, *, grouped: bool) -> pd.DataFrame:
    """Every (sample_id, sample_index) some model has a row for, in the samples' order, then by index."""
    seen: dict[tuple[str, int], None] = {}
    for model in tables.models:
        for frame in (model.produced, model.scores, model.judgments):
            if frame is None or not len(frame):
                continue
            column = "sample_id" if "sample_id" in frame.columns else "session_id" if grouped else None
            if column is None:
                continue
            ids = frame[column].tolist()
            indexes = [0] * len(ids) if grouped or "sample_index" not in frame else frame["sample_index"].tolist()
            for sample_id, index in zip(ids, indexes, strict=True):
                if isinstance(sample_id, str):
                    seen[(sample_id, 0 if index is None or index != index else int(index))] = None
    order = {sample_id: i for i, sample_id in enumerate(tables.samples["sample_id"].tolist())}
    last = len(order)
    keys = sorted(seen, key=lambda key: (order.get(key[0], last), key[0], key[1]))
    return pd.DataFrame({"sample_id": pd.Series([k[0] for k in keys], dtype=object),
                         "sample_index": pd.Series([k[1] for k in keys], dtype="int64")})


def lower_is_better(metric: str) -> bool:
    """Whether a lower score is the better one (``LOWER_IS_BETTER``, with or without the ``Builtin.`` prefix)."""
    return metric.removeprefix("Builtin.") in LOWER_IS_BETTER


def _metric_columns(tables: SuiteTables) -> dict[str, tuple[str, float | None, bool]]:
    """Each scorer and judge metric: its kind, the score that passes and whether lower is better (``PASS_RULE``)."""
    found: dict[str, list[pd.Series]] = {}
    kinds: dict[str, str] = {}
    for model in tables.models:
        for frame, column, kind in ((model.scores, "scorer", "scorer"), (model.judgments, "metric", "judge")):
            if frame is None or not len(frame) or column not in frame.columns:
                continue
            for name, rows in frame.groupby(column, sort=False):
                kinds.setdefault(str(name), kind)
                found.setdefault(str(name), []).append(rows["score"])
    columns = {}
    for name, series in found.items():
        values = pd.concat(series).dropna().astype(float)
        lower = lower_is_better(name)
        if values.empty:
            best = None
        elif values.between(0.0, 1.0).all():
            best = 0.0 if lower else 1.0
        else:
            best = float(values.min() if lower else values.max())
        columns[name] = (kinds[name], best, lower)
    return columns


def _model_cells(model: ModelTables, keys: pd.DataFrame, metrics: dict[str, tuple[str, float | None, bool]],
                 view: Any) -> dict[str, Any]:
    n = len(keys)
    index = pd.MultiIndex.from_frame(keys)
    output: list[Any] = [None] * n
    error: list[Any] = [None] * n
    info: list[Any] = [None] * n
    conversation: list[Any] | None = None
    present = np.zeros(n, dtype=bool)
    produced = model.produced
    if produced is not None and len(produced):
        if view is not None:
            rows = view.rows(produced)
            conversation = [None] * n
        else:
            rows = _generation_rows(produced)
        positions = index.get_indexer(pd.MultiIndex.from_frame(rows[KEY].astype({"sample_index": "int64"})))
        for position, out, err, line, talk in zip(positions.tolist(), _nullable(rows["output"]),
                                                  _nullable(rows["error"]), _nullable(rows["info"]),
                                                  rows["conversation"].tolist(), strict=True):
            if position < 0:
                continue
            present[position] = True
            output[position], error[position], info[position] = out, err, line
            if conversation is not None:
                conversation[position] = talk
    scores: dict[str, list[Any]] = {}
    grouped = view is not None and view.by_session
    for frame, column, with_text in ((model.scores, "scorer", False), (model.judgments, "metric", True)):
        if frame is None or not len(frame):
            continue
        frame = frame.assign(sample_index=0) if grouped else frame
        positions = index.get_indexer(pd.MultiIndex.from_frame(frame[KEY].astype({"sample_index": "int64"})))
        names = frame[column].astype(str).tolist()
        values = _nullable(frame["score"])
        errors = _nullable(frame["error"]) if "error" in frame else [None] * len(frame)
        labels = _nullable(frame["label"]) if with_text and "label" in frame else None
        texts = _nullable(frame["explanation"]) if with_text and "explanation" in frame else None
        bests = {name: metrics[name][1:] for name in set(names)}
        for row, (position, name, value, problem) in enumerate(zip(positions.tolist(), names, values, errors,
                                                                   strict=True)):
            if position < 0:
                continue
            present[position] = True
            best, lower = bests[name]
            passed = None if value is None else int(best is not None and (value <= best if lower else value >= best))
            result = [value, passed, problem]
            if texts is not None:
                result += [labels[row] if labels is not None else None, texts[row]]
            while len(result) > 2 and result[-1] is None:
                result.pop()
            cells = scores.get(name)
            if cells is None:
                cells = scores[name] = [None] * n
            if cells[position] is None:
                cells[position] = [result]
            else:
                cells[position].append(result)
    data: dict[str, Any] = {"present": present.astype(int).tolist(), "output": output, "error": error, "info": info,
                            "scores": scores}
    if conversation is not None:
        data["conversation"] = conversation
    return data


def _nullable(series: pd.Series) -> list[Any]:
    """The column as Python values, None for missing ones (no per-value type dispatch: fast)."""
    return [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v for v in series.tolist()]


def _generation_rows(produced: pd.DataFrame) -> pd.DataFrame:
    finish = produced["finish_reason"] if "finish_reason" in produced else pd.Series([None] * len(produced))
    return pd.DataFrame({
        "sample_id": produced["sample_id"],
        "sample_index": produced["sample_index"].fillna(0) if "sample_index" in produced else 0,
        "output": produced.get("output"),
        "error": produced.get("error"),
        "info": [None if pd.isna(f) else f"finish: {f}" for f in finish.tolist()],
        "conversation": None})


def _comparison(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    if table is None or table.empty:
        return []
    records = _records(table, COMPARISON_FIELDS)
    for record in records:
        if record.get("verdict") is None:
            record["verdict"] = _verdict(record.get("ci_low"), record.get("ci_high"))
            record["verdict_derived"] = True
    return records


def _verdict(low: float | None, high: float | None) -> str | None:
    """From the paired 95% CI of the difference (which excludes 0 exactly when p < 0.05)."""
    if low is None or high is None:
        return None
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no significant difference"


def _breakdown_values(rows: pd.DataFrame, key: str) -> list[Any]:
    if key in rows.columns:
        return _plain_list(rows[key])
    if "metadata" not in rows.columns:
        return [None] * len(rows)
    return [_plain(_json_object(text).get(key)) for text in rows["metadata"].tolist()]


def _json_object(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _input_text(text: Any, kind: Any) -> str | None:
    if not isinstance(text, str):
        return None
    return messages_text(text) if kind == "messages" else text


def _records(frame: pd.DataFrame | None, fields: list[str]) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    present = [f for f in fields if f in frame.columns]
    columns = {f: _plain_list(frame[f]) for f in present}
    return [{f: columns[f][i] for f in present} for i in range(len(frame))]


def _plain_list(series: pd.Series) -> list[Any]:
    if series.dtype.kind in "fiub" or pd.api.types.is_string_dtype(series.dtype):
        return _nullable(series)  # Python scalars already
    return [_plain(v) for v in series.tolist()]


def _plain_dict(data: dict[str, Any]) -> dict[str, Any]:
    return {str(k): (_plain_dict(v) if isinstance(v, dict) else _plain(v)) for k, v in data.items()}


_PLAIN: dict[type, Callable[[Any], Any]] = {np.bool_: bool, np.integer: int, np.floating: float}


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: NaN/NA → None, numpy scalars → Python ones."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.generic):
        for kind, cast in _PLAIN.items():
            if isinstance(value, kind):
                return _plain(cast(value))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
