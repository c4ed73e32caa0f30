"""Tools as typed Python functions: their JSON schema from type hints and the docstring, and calling one from a
model's ``ToolCall`` with its arguments validated against that schema.

A schema given explicitly is checked against the JSON Schema meta-schema, so a tool the model could never call
correctly is refused when the suite loads (an ``EvalInputError`` naming the environment, the tool and the field).
A bad call (arguments that are not JSON, missing, extra or mistyped) is the model's mistake: it becomes an
``is_error`` tool result the model can read and correct, never a crash. A tool reports its own failures the same
way by raising ``ToolError``; any other exception is the environment's fault and the caller decides what to do.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, tool_result
from eval_pipeline.errors import EvalInputError

TOOL_MARK = "__eval_pipeline_tool__"
"""The attribute ``@tool`` sets on a function: the options it was declared with."""

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolError(Exception):
    """Raised by a tool for a failure the model should read (an unknown order, a bad key): an error tool result."""


class ToolSchemaError(EvalInputError):
    """A tool schema that cannot be built from the type hints or is not valid JSON schema, at ``field`` (dotted,
    from the spec: ``parameters.properties.key.type``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


@dataclass(frozen=True)
class Tool:
    """A tool the model may call: its spec and the function behind it."""

    spec: ToolSpec
    function: Callable[..., Any]

    @property
    def name(self) -> str:
        return self.spec.name

    def call(self, call: ToolCall) -> ChatMessage:
        """The tool message answering ``call``: the result, or an ``is_error`` message for a bad call or a
        ``ToolError``. Other exceptions propagate (they are the environment's, not the model's)."""
        try:
            arguments = call.parsed_arguments()
        except ValueError as exc:
            return tool_result(call, f"Error: arguments of {call.name!r} are not a JSON object: {exc}", is_error=True)
        problems = argument_errors(self.spec, arguments)
        if problems:
            return tool_result(call, f"Error: bad arguments for tool {call.name!r}: " + "; ".join(problems),
                               is_error=True)
        try:
            value = self.function(**arguments)
        except ToolError as exc:
            return tool_result(call, f"Error: {exc}", is_error=True)
        return tool_result(call, result_text(value))


class Toolbox:
    """Tools by name; answers a tool call with its tool's message, and an unknown tool with an error message."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec for tool in self.tools.values())

    def call(self, call: ToolCall) -> ChatMessage:
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return tool_result(call, f"Error: unknown tool {call.name!r}; the tools are: {known}", is_error=True)
        return tool.call(call)


def tool(function: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
         parameters: Mapping[str, Any] | None = None) -> Any:
    """Mark a function (or a method of a ``ToolEnvironment``) as a tool. ``parameters`` replaces the schema read
    from the type hints; it is checked against the JSON Schema meta-schema when the tool's spec is built."""

    def mark(target: Callable[..., Any]) -> Callable[..., Any]:
        setattr(target, TOOL_MARK, {"name": name, "description": description, "parameters": parameters})
        return target

    return mark(function) if function is not None else mark


def tool_from_function(function: Callable[..., Any], *, environment: str, skip_self: bool = False) -> Tool:
    """The ``Tool`` for a (possibly ``@tool``-marked) function; ``skip_self`` drops a method's first parameter.
    A bad schema is an ``EvalInputError`` naming the environment, the tool and the field (``tools.<name>.…``)."""
    options = getattr(function, TOOL_MARK, {})
    name = options.get("name") or function.__name__
    try:
        spec = tool_spec(function, name=name, description=options.get("description"),
                         parameters=options.get("parameters"), skip_self=skip_self)
    except ToolSchemaError as problem:
        raise EvalInputError(f"environment {environment!r}: tool {name!r}: {problem.reason}",
                             field=f"tools.{name}.{problem.field}") from None
    return Tool(spec=spec, function=function)


def tool_spec(function: Callable[..., Any], *, name: str | None = None, description: str | None = None,
              parameters: Mapping[str, Any] | None = None, skip_self: bool = False) -> ToolSpec:
    """The spec of a typed function: the docstring's summary as the description, each parameter's type hint as
    its JSON schema (with the docstring's ``Args:`` line as its description), parameters without a default
    required, no other properties allowed. An explicit ``parameters`` schema is checked instead."""
    summary, argument_docs = parse_docstring(inspect.getdoc(function) or "")
    if parameters is not None:
        schema = dict(parameters)
    else:
        schema = parameters_schema(function, argument_docs, skip_self=skip_self)
    spec = ToolSpec(name=name or function.__name__, description=description or summary, parameters=schema)
    check_schema(spec)
    return spec


def parameters_schema(function: Callable[..., Any], argument_docs: Mapping[str, str] | None = None, *,
                      skip_self: bool = False) -> dict[str, Any]:
    """The JSON schema object for a function's parameters, from its type hints."""
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise ToolSchemaError("parameters", f"cannot read the type hints: {exc}") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    params = list(signature.parameters.values())
    for param in params[1:] if skip_self else params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolSchemaError(f"parameters.properties.{param.name}",
                                  "*args and **kwargs cannot be tool parameters")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolSchemaError(f"parameters.properties.{param.name}",
                                  "positional-only parameters cannot be tool parameters")
        field = f"parameters.properties.{param.name}"
        schema = json_schema(hints[param.name], field) if param.name in hints else {}
        if argument_docs and param.name in argument_docs:
            schema["description"] = argument_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif _json_value(param.default):
            schema["default"] = param.default
        properties[param.name] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        result["required"] = required
    return result


def json_schema(annotation: Any, field: str = "type") -> dict[str, Any]:
    """The JSON schema of one type hint: str, int, float, bool, None, Literal, list/tuple/set, dict with
    string keys, ``X | None``, unions and ``Annotated`` (its first string metadata is the description)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return {}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if origin is typing.Annotated:
        schema = json_schema(args[0], field)
        notes = [item for item in args[1:] if isinstance(item, str)]
        if notes:
            schema["description"] = notes[0]
        return schema
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [json_schema(arg, field) for arg in args]
        return {"anyOf": options}
    if origin in (list, tuple, set, frozenset, Sequence) or annotation in (list, tuple, set):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {"type": "array", "prefixItems": [json_schema(arg, field) for arg in args],
                    "minItems": len(args), "maxItems": len(args)}
        return {"type": "array", "items": json_schema(args[0], field)} if args else {"type": "array"}
    if origin in (dict, Mapping) or annotation is dict:
        if args and args[0] is not str:
            raise ToolSchemaError(field, f"a JSON object has string keys, not {args[0]!r}")
        return {"type": "object", "additionalProperties": json_schema(args[1], field)} if args else {"type": "object"}
    raise ToolSchemaError(field, f"type {annotation!r} has no JSON schema (use str, int, float, bool, Literal, "
                                f"list, dict[str, …] or a union of them)")


def check_schema(spec: ToolSpec) -> None:
    """Refuse parameters that are not a valid JSON schema of an object (``ToolSchemaError`` at the bad field)."""
    parameters = spec.parameters
    if not isinstance(parameters, Mapping):
        raise ToolSchemaError("parameters", f"must be a JSON schema object, not {type(parameters).__name__}")
    try:
        validator_for(parameters).check_schema(parameters)
    except SchemaError as error:
        where = ".".join(str(part) for part in error.path)
        raise ToolSchemaError("parameters" + (f".{where}" if where else ""),
                             f"not a valid JSON schema: {error.message}") from None
    if parameters.get("type") != "object":
        raise ToolSchemaError("parameters.type", f"tool parameters must be a schema of type 'object', "
                                                f"not {parameters.get('type')!r}")


def check_tool_schemas(specs: Iterable[ToolSpec], *, environment: str, file: str | None = None,
                       field_prefix: str = "environment.tools") -> None:
    """``EvalInputError`` for the first tool whose parameters are not valid JSON schema, naming the environment,
    the tool and the field (e.g. ``environment.tools.lookup.parameters.properties.key.type``)."""
    for spec in specs:
        try:
            check_schema(spec)
        except ToolSchemaError as problem:
            raise EvalInputError(f"environment {environment!r}: tool {spec.name!r}: {problem.reason}", file=file,
                                 field=f"{field_prefix}.{spec.name}.{problem.field}") from None


def argument_errors(spec: ToolSpec, arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``arguments`` against the tool's schema, one line per problem (empty when valid)."""
    validator = validator_for(spec.parameters)(spec.parameters)
    problems = []
    for error in sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(map(str, e.path))):
        where = "/".join(str(part) for part in error.path)
        problems.append(f"argument {where!r}: {error.message}" if where else error.message)
    return problems


def result_text(value: Any) -> str:
    """A tool's return value as the text of its message: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:$")
_ARGS_HEADER = re.compile(r"^(Args|Arguments|Parameters):$")
_ARG_LINE = re.compile(r"^(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_PARAM_LINE = re.compile(r"^:param\s+(?:\S+\s+)?(\w+):\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (the text before the first section such as ``Args:`` or ``:param``) and each argument's
    description, from Google style (``Args:`` then ``name: text`` or ``name (type): text``, continuation lines
    indented deeper) or reST (``:param name: text``)."""
    summary: list[str] = []
    arguments: dict[str, str] = {}
    section, current, arg_indent = "summary", None, None
    for raw in doc.splitlines():
        line, indent = raw.strip(), len(raw) - len(raw.lstrip())
        param = _PARAM_LINE.match(line)
        if param:
            section, current = "param", param.group(1)
            arguments[current] = param.group(2).strip()
            continue
        if indent == 0 and _SECTION.match(line):
            section = "args" if _ARGS_HEADER.match(line) else "other"
            current, arg_indent = None, None
            continue
        if section == "summary":
            summary.append(line)
            continue
        match = _ARG_LINE.match(line) if section == "args" else None
        if match and (arg_indent is None or indent <= arg_indent):
            arg_indent, current = indent, match.group(1)
            arguments[current] = match.group(3).strip()
        elif section in ("args", "param") and current is not None and line:
            arguments[current] = f"{arguments[current]} {line}".strip()
    return " ".join(" ".join(summary).split()), arguments


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
