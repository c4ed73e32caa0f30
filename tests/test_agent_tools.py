"""Tools as typed functions: schemas from type hints and docstrings, explicit schemas checked against the JSON
Schema meta-schema, and tool calls validated against the schema (a bad call is an error result, not a crash)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pytest

from eval_pipeline.agents.environment import AgentTask
from eval_pipeline.agents.tool_environment import Reward, ToolEnvironment
from eval_pipeline.agents.tools import (
    Tool,
    Toolbox,
    ToolError,
    ToolSchemaError,
    check_tool_schemas,
    parse_docstring,
    tool,
    tool_spec,
)
from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec
from eval_pipeline.errors import EvalInputError


def search(query: str, limit: int, threshold: float = 0.5, exact: bool = False,
           tags: list[str] | None = None, mode: Literal["fast", "slow"] = "fast",
           weights: dict[str, float] | None = None, note: Annotated[str, "free text"] = "") -> str:
    """Search the catalogue.

    Finds items matching a query.

    Args:
        query: what to look for.
        limit (int): the most results
            to return.

    Returns:
        the matches.
    """
    return query


def test_schema_from_type_hints_and_docstring() -> None:
    spec = tool_spec(search)
    assert spec.name == "search"
    assert spec.description == "Search the catalogue. Finds items matching a query."
    assert dict(spec.parameters) == {
        "type": "object",
        "additionalProperties": False,
        "required": ["query", "limit"],
        "properties": {
            "query": {"type": "string", "description": "what to look for."},
            "limit": {"type": "integer", "description": "the most results to return."},
            "threshold": {"type": "number", "default": 0.5},
            "exact": {"type": "boolean", "default": False},
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], "default": None},
            "mode": {"enum": ["fast", "slow"], "default": "fast"},
            "weights": {"anyOf": [{"type": "object", "additionalProperties": {"type": "number"}}, {"type": "null"}],
                        "default": None},
            "note": {"type": "string", "description": "free text", "default": ""},
        },
    }


def test_rest_docstring_and_overrides() -> None:
    summary, arguments = parse_docstring("Add two numbers.\n\n:param a: the first\n:param int b: the second\n")
    assert summary == "Add two numbers."
    assert arguments == {"a": "the first", "b": "the second"}

    @tool(name="plus", description="Adds.")
    def add(a: int, b: int) -> int:
        return a + b

    spec = tool_spec(add, name="plus", description="Adds.")
    assert (spec.name, spec.description, spec.parameters["required"]) == ("plus", "Adds.", ["a", "b"])


def test_unsupported_annotation_names_the_tool_and_field() -> None:
    class Opaque:
        pass

    class Env(ToolEnvironment):
        @tool
        def bad(self, thing: Opaque) -> str:  # type: ignore[valid-type]
            return ""

        def reward(self) -> float:
            return 0.0

    Env.bad.__annotations__["thing"] = Opaque  # resolvable without the local scope
    with pytest.raises(EvalInputError) as caught:
        Env.tool_specs()
    assert "tool 'bad'" in str(caught.value) and "Env" in str(caught.value)
    assert caught.value.field == "tools.bad.parameters.properties.thing"


@pytest.mark.parametrize(("parameters", "field"), [
    ({"type": "object", "properties": {"key": {"type": "strng"}}}, "parameters.properties.key.type"),
    ({"type": "object", "required": "key"}, "parameters.required"),
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": "zero"}}},
     "parameters.properties.n.minimum"),
    ({"type": "array", "items": {"type": "string"}}, "parameters.type"),
])
def test_invalid_explicit_schema_is_refused_naming_environment_tool_and_field(parameters: dict, field: str) -> None:
    class Store(ToolEnvironment):
        @tool(parameters=parameters)
        def lookup(self, key: str) -> str:
            return key

        def reward(self) -> float:
            return 0.0

    with pytest.raises(EvalInputError) as caught:
        Store.tool_specs()
    message = str(caught.value)
    assert "Store" in message and "tool 'lookup'" in message
    assert "not a valid JSON schema" in message or field == "parameters.type"
    assert caught.value.field == f"tools.lookup.{field}"

    with pytest.raises(EvalInputError) as direct:
        check_tool_schemas([ToolSpec(name="lookup", parameters=parameters)], environment="my-env", file="s.yaml")
    assert direct.value.field == f"environment.tools.lookup.{field}"
    assert "'my-env'" in str(direct.value) and str(direct.value).startswith("s.yaml: ")


def test_valid_explicit_schema_is_kept() -> None:
    schema = {"type": "object", "properties": {"key": {"type": "string", "minLength": 1}}, "required": ["key"]}
    spec = tool_spec(lambda key: key, name="lookup", parameters=schema)
    assert dict(spec.parameters) == schema
    check_tool_schemas([spec], environment="e")


def _toolbox() -> Toolbox:
    def add(a: int, b: int = 0) -> int:
        """Add."""
        return a + b

    def explode(text: str) -> str:
        raise ToolError(f"cannot explode {text}")

    def broken() -> str:
        raise RuntimeError("bug in the environment")

    return Toolbox(Tool(spec=tool_spec(fn), function=fn) for fn in (add, explode, broken))


@pytest.mark.parametrize(("arguments", "expected"), [
    ('{"a": 2, "b": 3}', "5"),
    ('{"a": 2}', "2"),
])
def test_valid_calls_run(arguments: str, expected: str) -> None:
    result = _toolbox().call(ToolCall(id="c1", name="add", arguments=arguments))
    assert (result.role, result.tool_call_id, result.name, result.is_error, result.content) == \
        ("tool", "c1", "add", False, expected)


@pytest.mark.parametrize(("arguments", "words"), [
    ('{"b": 3}', ["'a' is a required property"]),
    ('{"a": 1, "c": 3}', ["Additional properties are not allowed", "'c' was unexpected"]),
    ('{"a": "two"}', ["argument 'a'", "'two' is not of type 'integer'"]),
    ('{"a": true}', ["argument 'a'", "not of type 'integer'"]),
    ('{"a": 1.5}', ["argument 'a'", "not of type 'integer'"]),
    ("[1, 2]", ["not a JSON object"]),
    ("{a: 1", ["not a JSON object"]),
])
def test_bad_arguments_are_error_results(arguments: str, words: list[str]) -> None:
    result = _toolbox().call(ToolCall(id="c2", name="add", arguments=arguments))
    assert result.is_error and result.role == "tool" and result.tool_call_id == "c2"
    for word in words:
        assert word in result.content


def test_unknown_tool_and_tool_error_are_error_results_but_bugs_propagate() -> None:
    box = _toolbox()
    unknown = box.call(ToolCall(id="c3", name="multiply", arguments="{}"))
    assert unknown.is_error and "unknown tool 'multiply'" in unknown.content
    assert "add, explode, broken" in unknown.content
    failed = box.call(ToolCall(id="c4", name="explode", arguments='{"text": "x"}'))
    assert failed.is_error and failed.content == "Error: cannot explode x"
    with pytest.raises(RuntimeError):
        box.call(ToolCall(id="c5", name="broken", arguments="{}"))


class Counter(ToolEnvironment):
    """Count up with ``bump``; ``done`` submits; reward is the count over 3, capped at 1."""

    system_prompt = "Count."
    submit_tool = "done"

    def setup(self, task: AgentTask) -> None:
        self.count = 0

    @tool
    def bump(self, by: int = 1) -> dict[str, Any]:
        """Add to the counter."""
        self.count += by
        return {"count": self.count}

    @tool
    def done(self) -> str:
        """Finish."""
        return "ok"

    @tool
    def crash(self) -> str:
        """A tool with a bug."""
        raise KeyError("oops")

    def reward(self) -> Reward:
        return Reward(min(1.0, self.count / 3), components={"count": float(self.count)})


def _assistant(*calls: tuple[str, dict[str, Any]], text: str = "") -> ChatMessage:
    return ChatMessage(role="assistant", content=text, tool_calls=tuple(
        ToolCall(id=f"call-{i}", name=name, arguments=json.dumps(args)) for i, (name, args) in enumerate(calls)))


def test_tool_environment_episode() -> None:
    env = Counter()
    reset = env.reset(AgentTask(task_id="t", prompt="count to three"))
    assert [m.role for m in reset.messages] == ["system", "user"]
    assert [spec.name for spec in reset.tools] == ["bump", "done", "crash"]
    step = env.step(_assistant(("bump", {"by": 2}), ("bump", {"by": "x"}), ("nope", {})))
    assert not step.done and step.reward is None
    assert [m.is_error for m in step.observations] == [False, True, True]
    assert step.observations[0].content == '{"count": 2}'
    step = env.step(_assistant(("bump", {}), ("done", {})))
    assert step.done and step.reward == 1.0 and step.info == {"reward_components": {"count": 3.0}}


def test_reply_without_tool_calls_ends_and_rewards() -> None:
    env = Counter()
    env.reset(AgentTask(task_id="t", prompt="p"))
    env.step(_assistant(("bump", {})))
    step = env.step(ChatMessage(role="assistant", content="I counted to one."))
    assert step.done and step.reward == pytest.approx(1 / 3) and step.error is None
    assert env.final_answer() == "I counted to one."


def test_conversational_reply_waits_for_the_user_stop_message() -> None:
    env = Counter(conversational=True)
    env.reset(AgentTask(task_id="t", prompt="p"))
    waiting = env.step(ChatMessage(role="assistant", content="How far?"))
    assert not waiting.done and waiting.observations == () and waiting.reward is None
    final = env.step(ChatMessage(role="user", content="###STOP###"))
    assert final.done and final.reward == 0.0


def test_a_tool_bug_is_the_environments_error() -> None:
    env = Counter()
    env.reset(AgentTask(task_id="t", prompt="p"))
    step = env.step(_assistant(("bump", {}), ("crash", {})))
    assert step.done and step.error_source == "environment" and "KeyError" in (step.error or "")
    assert len(step.observations) == 1 and step.reward is None


def test_signatures_without_a_schema_are_refused() -> None:
    def star(*values: int) -> int:
        return 0

    def positional(a: int, /) -> int:
        return a

    def int_keys(table: dict[int, str]) -> str:
        return ""

    for function, field in ((star, "parameters.properties.values"), (positional, "parameters.properties.a"),
                            (int_keys, "parameters.properties.table")):
        with pytest.raises(ToolSchemaError) as caught:
            tool_spec(function)
        assert caught.value.field == field
    with pytest.raises(ToolSchemaError, match="not a valid JSON schema"):
        tool_spec(lambda key: key, name="lookup", parameters={"type": "object", "properties": []})
