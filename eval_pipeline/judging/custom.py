"""Custom judge metrics in SageMaker/Bedrock's ``customMetricDefinition`` format, validated before any inference.

The accepted input is a list of ``{"customMetricDefinition": {"name", "instructions", "ratingScale"}}`` objects
(or one such object): as JSON text, as a path to a JSON file, or as the equivalent Python data.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from typing import Any

from eval_pipeline.judging.builtin import builtin_metric, canonical_builtin_name
from eval_pipeline.judging.metric import (
    PLACEHOLDERS,
    JudgeMetric,
    JudgeMetricError,
    RatingLevel,
    normalize_label,
    placeholders_in,
)

MAX_CUSTOM_METRICS = 10
MAX_INSTRUCTIONS_CHARS = 5_000
MAX_RATING_LEVELS = 10
NAME_RE = re.compile(r"^[0-9a-zA-Z\-_.]{1,63}$")
WRAPPER = "customMetricDefinition"
_DEFINITION_KEYS = ("name", "instructions", "ratingScale")
_LEVEL_KEYS = ("definition", "value")
_VALUE_KEYS = ("floatValue", "stringValue")
_AVAILABLE = ", ".join("{{" + name + "}}" for name in PLACEHOLDERS)
_PLACEHOLDER_SYNONYMS = {
    "response": "prediction", "output": "prediction", "answer": "prediction", "completion": "prediction",
    "model_output": "prediction", "generation": "prediction", "reference": "ground_truth",
    "target": "ground_truth", "expected": "ground_truth", "groundtruth": "ground_truth",
    "referenceresponse": "ground_truth", "reference_response": "ground_truth", "input": "prompt",
    "question": "prompt", "query": "prompt",
}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


class _Where:
    """Builds errors located at one file/source."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def error(self, message: str, field: str | None = None, line: int | None = None) -> JudgeMetricError:
        return JudgeMetricError(message, file=self.file, line=line, field=field)


def _load(value: Any, source: str | None) -> tuple[Any, _Where]:
    """The metrics data and where it came from."""
    if isinstance(value, os.PathLike):
        return _read_file(os.fspath(value))
    if isinstance(value, str):
        text = value.strip()
        if text and text[0] not in "[{":
            if os.path.isfile(text):
                return _read_file(text)
            if text.endswith(".json") or os.sep in text:
                raise _Where(source).error(f"custom metrics file {text!r} does not exist", "custom_metrics")
        return _parse_json(text, _Where(source), from_file=False), _Where(source)
    if isinstance(value, list | dict):
        return value, _Where(source)
    raise _Where(source).error(f"custom metrics must be JSON text, a .json file path, a list or an object, "
                               f"not {_kind(value)}", "custom_metrics")


def _read_file(path: str) -> tuple[Any, _Where]:
    where = _Where(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise where.error(f"cannot read custom metrics file: {exc}", "custom_metrics") from exc
    return _parse_json(text, where, from_file=True), where


def _parse_json(text: str, where: _Where, *, from_file: bool) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise where.error(f"custom metrics are not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
                          f"(char {exc.pos})", "custom_metrics", line=exc.lineno if from_file else None) from exc


def _unknown_keys(found: dict[str, Any], allowed: tuple[str, ...], where: _Where, field: str) -> None:
    unknown = [key for key in found if key not in allowed]
    if unknown:
        hints = [f"{key!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(str(key), allowed, 1))
                 else repr(key) for key in unknown]
        raise where.error(f"unknown key(s) {', '.join(hints)}; allowed keys: {', '.join(allowed)}", field)


def _parse_name(definition: dict[str, Any], where: _Where, field: str) -> str:
    name = definition["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise where.error(f"metric name {name!r} is invalid: use 1 to 63 characters from letters, digits, "
                          "'-', '_' and '.'", f"{field}.name")
    return name


def _parse_instructions(definition: dict[str, Any], where: _Where, field: str) -> str:
    field = f"{field}.instructions"
    instructions = definition["instructions"]
    if not isinstance(instructions, str):
        raise where.error(f"instructions must be a string, not {_kind(instructions)}", field)
    if not instructions.strip():
        raise where.error("instructions are empty", field)
    if len(instructions) > MAX_INSTRUCTIONS_CHARS:
        raise where.error(f"instructions are {len(instructions)} characters long; the limit is "
                          f"{MAX_INSTRUCTIONS_CHARS}", field)
    used = placeholders_in(instructions)
    unknown = [name for name in used if name not in PLACEHOLDERS]
    if unknown:
        hints = []
        for name in unknown:
            guess = _PLACEHOLDER_SYNONYMS.get(name.casefold()) or next(
                iter(difflib.get_close_matches(name, PLACEHOLDERS, 1)), None)
            hints.append("{{" + name + "}}" + (f" (did you mean {{{{{guess}}}}}?)" if guess else ""))
        raise where.error(f"unknown placeholder(s) {', '.join(hints)}; available placeholders: {_AVAILABLE}", field)
    if not used:
        raise where.error(f"instructions use no placeholder; they must include {{{{prediction}}}} (available "
                          f"placeholders: {_AVAILABLE})", field)
    if "prediction" not in used:
        raise where.error(f"instructions must include {{{{prediction}}}}, where the response to judge goes "
                          f"(available placeholders: {_AVAILABLE})", field)
    return instructions


def _parse_level(level: Any, where: _Where, field: str) -> RatingLevel:
    if not isinstance(level, dict):
        raise where.error(f"a rating level must be an object with 'definition' and 'value', not {_kind(level)}",
                          field)
    _unknown_keys(level, _LEVEL_KEYS, where, field)
    for key in _LEVEL_KEYS:
        if key not in level:
            raise where.error(f"rating level is missing {key!r}", f"{field}.{key}")
    definition = level["definition"]
    if not isinstance(definition, str) or not definition.strip():
        raise where.error("definition must be a non-empty string", f"{field}.definition")
    if not normalize_label(definition):
        raise where.error(f"definition {definition!r} must contain a letter or digit", f"{field}.definition")
    value = level["value"]
    if not isinstance(value, dict):
        raise where.error(f"value must be an object with floatValue or stringValue, not {_kind(value)}",
                          f"{field}.value")
    _unknown_keys(value, _VALUE_KEYS, where, f"{field}.value")
    present = [key for key in _VALUE_KEYS if key in value]
    if len(present) != 1:
        raise where.error("value must have exactly one of floatValue (a number) or stringValue (a string)",
                          f"{field}.value")
    key = present[0]
    raw = value[key]
    if key == "floatValue":
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise where.error(f"floatValue must be a finite number, not {raw!r}", f"{field}.value.floatValue")
        return RatingLevel(definition, float(raw))
    if not isinstance(raw, str):
        raise where.error(f"stringValue must be a string, not {_kind(raw)}", f"{field}.value.stringValue")
    return RatingLevel(definition, raw)


def _parse_scale(definition: dict[str, Any], where: _Where, field: str) -> tuple[RatingLevel, ...]:
    field = f"{field}.ratingScale"
    scale = definition["ratingScale"]
    if not isinstance(scale, list) or not scale:
        raise where.error("ratingScale must be a non-empty list of {\"definition\", \"value\"} levels", field)
    if len(scale) > MAX_RATING_LEVELS:
        raise where.error(f"ratingScale has {len(scale)} levels; the limit is {MAX_RATING_LEVELS}", field)
    levels: list[RatingLevel] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(scale):
        level = _parse_level(raw, where, f"{field}[{index}]")
        if levels and level.is_float != levels[0].is_float:
            raise where.error("all rating levels must use the same kind of value (all floatValue or all "
                              "stringValue)", f"{field}[{index}].value")
        key = normalize_label(level.definition)
        if key in seen:
            raise where.error(f"duplicate definition {level.definition!r} (same as level {seen[key]})",
                              f"{field}[{index}].definition")
        seen[key] = index
        levels.append(level)
    return tuple(levels)


def _parse_item(item: Any, index: int, where: _Where) -> JudgeMetric:
    field = f"custom_metrics[{index}]"
    if not isinstance(item, dict):
        raise where.error(f'each custom metric must be an object {{"{WRAPPER}": {{...}}}}, not {_kind(item)}', field)
    if WRAPPER not in item:
        if set(item) & set(_DEFINITION_KEYS):
            raise where.error(f"the '{WRAPPER}' wrapper is missing: write "
                              f'{{"{WRAPPER}": {{"name": ..., "instructions": ..., "ratingScale": [...]}}}}', field)
        raise where.error(f"expected the key '{WRAPPER}', found {sorted(item)}", field)
    extra = sorted(key for key in item if key != WRAPPER)
    if extra:
        raise where.error(f"unknown key(s) {extra} next to '{WRAPPER}'", field)
    field = f"{field}.{WRAPPER}"
    definition = item[WRAPPER]
    if not isinstance(definition, dict):
        raise where.error(f"'{WRAPPER}' must be an object, not {_kind(definition)}", field)
    _unknown_keys(definition, _DEFINITION_KEYS, where, field)
    for key in _DEFINITION_KEYS:
        if key not in definition:
            raise where.error(f"missing required key {key!r}", f"{field}.{key}")
    return JudgeMetric(name=_parse_name(definition, where, field),
                       instructions=_parse_instructions(definition, where, field),
                       rating_scale=_parse_scale(definition, where, field))


def _parse(value: Any, source: str | None) -> tuple[list[JudgeMetric], _Where]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return [], _Where(source)
    data, where = _load(value, source)
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise where.error(f'custom metrics must be a list of {{"{WRAPPER}": {{...}}}} objects, not {_kind(data)}',
                          "custom_metrics")
    if len(items) > MAX_CUSTOM_METRICS:
        raise where.error(f"{len(items)} custom metrics given; the limit is {MAX_CUSTOM_METRICS}", "custom_metrics")
    metrics: list[JudgeMetric] = []
    for index, item in enumerate(items):
        metric = _parse_item(item, index, where)
        if any(other.name.casefold() == metric.name.casefold() for other in metrics):
            raise where.error(f"duplicate custom metric name {metric.name!r}",
                              f"custom_metrics[{index}].{WRAPPER}.name")
        metrics.append(metric)
    return metrics, where


def parse_custom_metrics(value: str | os.PathLike | list | dict | None, *,
                         source: str | None = None) -> list[JudgeMetric]:
    """Validated custom metrics from JSON text, a .json path, or Python data (None or blank text → []).

    A string is read as JSON unless it names an existing file (relative paths resolve against the working
    directory, so callers should pass paths already resolved against their config file's folder).

    Errors are JudgeMetricError with ``file`` (the JSON file, else ``source``) and ``field`` set, e.g.
    ``custom_metrics[0].customMetricDefinition.ratingScale[1].value``.
    """
    return _parse(value, source)[0]


def resolve_metrics(builtin: list[str] | None, custom: str | os.PathLike | list | dict | None, *,
                    source: str | None = None) -> list[JudgeMetric]:
    """The builtin metrics (duplicates dropped, in order) then the custom ones; at least one, names unique.

    ``builtin`` may also be one comma-separated string. A custom metric may not reuse a builtin's name.
    """
    names = [part for part in builtin.split(",") if part.strip()] if isinstance(builtin, str) else list(builtin or [])
    metrics: list[JudgeMetric] = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise JudgeMetricError(f"builtin metric names must be strings, not {_kind(name)}", file=source,
                                   field=f"builtin_metrics[{index}]")
        try:
            metric = builtin_metric(name)
        except JudgeMetricError as exc:
            raise JudgeMetricError(exc.reason, file=source, field=exc.field) from None
        if metric not in metrics:
            metrics.append(metric)
    customs, where = _parse(custom, source)
    for index, metric in enumerate(customs):
        if canonical_builtin_name(metric.name) is not None:
            raise where.error(f"custom metric name {metric.name!r} is the name of a builtin metric; choose another "
                              "name", f"custom_metrics[{index}].{WRAPPER}.name")
    metrics.extend(customs)
    if not metrics:
        raise JudgeMetricError("no judge metrics: give builtin_metrics and/or custom_metrics", file=source,
                               field="builtin_metrics")
    return metrics
