"""The example environments that ship (a scripted perfect agent gets reward 1, a wrong one 0; retail's DB and
communication rewards), and the ``python`` environment kind (import paths checked when a suite loads)."""

from __future__ import annotations

import copy
import json
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from eval_pipeline.agents.environment import AgentTask, Environment, Step
from eval_pipeline.agents.python_env import PythonEnvironmentKind
from eval_pipeline.agents.tools import argument_errors
from eval_pipeline.data.messages import ChatMessage, ToolCall
from eval_pipeline.errors import EvalInputError

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "examples" / "data" / "agents"
CALCULATOR = "examples.environments.calculator:CalculatorEnvironment"
KV = "examples.environments.kv_lookup:KeyValueEnvironment"
RETAIL = "examples.environments.retail_db:RetailEnvironment"


def _tasks(name: str) -> list[AgentTask]:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    return [AgentTask(task_id=row["id"], prompt=row["prompt"], data=row) for row in rows]


def _call(name: str, **arguments: Any) -> ChatMessage:
    return ChatMessage(role="assistant", tool_calls=(ToolCall(id=f"c-{name}", name=name,
                                                              arguments=json.dumps(arguments)),))


def _say(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


def _run(path: str, task: AgentTask, script: Sequence[ChatMessage]) -> tuple[list[Step], Environment]:
    """Play a scripted agent through an environment built by the python kind; every step but the last is not done."""
    env = PythonEnvironmentKind.build({"kind": "python", "path": path}, root=REPO)
    reset = env.reset(task)
    assert reset.messages[-1].content == task.prompt and reset.tools
    steps = [env.step(message) for message in script]
    env.close()
    assert [step.done for step in steps] == [False] * (len(steps) - 1) + [True]
    assert all(step.error is None for step in steps)
    return steps, env


def _independent_value(prompt: str) -> float:
    """The arithmetic in 'What is <expr>? ...', by hand: two operands and one operator, or '(a + b) * c'."""
    expression = prompt.removeprefix("What is ").split("?")[0]
    if expression.startswith("("):
        inner, _, outer = expression[1:].partition(")")
        a, _, b = inner.split()
        return (float(a) + float(b)) * float(outer.split()[-1])
    a, op, b = expression.split()
    x, y = float(a), float(b)
    return {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]


@pytest.mark.parametrize("task", _tasks("calculator.jsonl"), ids=lambda t: t.task_id)
def test_calculator_perfect_and_wrong_agents(task: AgentTask) -> None:
    expected = _independent_value(task.prompt)
    assert float(task.data["expected"]) == expected
    expression = task.prompt.removeprefix("What is ").split("?")[0]
    steps, _ = _run(CALCULATOR, task, [_call("calculate", expression=expression),
                                       _say(f"The answer is {expected:g}.")])
    result = steps[0].observations[0]
    assert not result.is_error and float(result.content) == expected
    assert steps[-1].reward == 1.0
    wrong, _ = _run(CALCULATOR, task, [_call("calculate", expression=expression), _say(f"It is {expected + 1:g}.")])
    assert wrong[-1].reward == 0.0


def test_calculator_tool_errors_and_lenient_answers() -> None:
    task = AgentTask(task_id="t", prompt="What is 1234 * 2?", data={"expected": 2468})
    steps, _ = _run(CALCULATOR, task, [_call("calculate", expression="__import__('os')"),
                                       _call("calculate", expression="1 / 0"),
                                       _call("calculate", expr="1"),
                                       _say("1234 × 2 = 2,468")])
    assert [s.observations[0].is_error for s in steps[:3]] == [True, True, True]
    assert "not plain arithmetic" in steps[0].observations[0].content
    assert "division by zero" in steps[1].observations[0].content
    assert "'expression' is a required property" in steps[2].observations[0].content
    assert steps[-1].reward == 1.0
    no_answer, _ = _run(CALCULATOR, task, [_say("I do not know.")])
    assert no_answer[-1].reward == 0.0


@pytest.mark.parametrize("task", _tasks("kv_lookup.jsonl"), ids=lambda t: t.task_id)
def test_kv_lookup_perfect_and_wrong_agents(task: AgentTask) -> None:
    key = task.data["key"]
    assert task.data["store"][key] == task.data["expected"]
    steps, _ = _run(KV, task, [_call("get", key=key), _say(f"The value is {task.data['store'][key]}.")])
    assert steps[0].observations[0].content == task.data["store"][key]
    assert steps[-1].reward == 1.0
    other = next(k for k in task.data["store"] if k != key)
    wrong, _ = _run(KV, task, [_call("get", key=other), _say(f"The value is {task.data['store'][other]}.")])
    assert wrong[-1].reward == 0.0


def test_kv_unknown_key_is_an_error_result() -> None:
    task = _tasks("kv_lookup.jsonl")[0]
    steps, _ = _run(KV, task, [_call("get", key="nope"), _say("turquoise")])
    assert steps[0].observations[0].is_error and "the keys are: city, color, pet" in steps[0].observations[0].content


def _gold_script(task: AgentTask) -> list[ChatMessage]:
    calls = [_call(action["name"], **action["arguments"]) for action in task.data["gold_actions"]]
    return [*calls, _say("Done: " + ", ".join(task.data["required_phrases"]) + ".")]


def _expected_db(task: AgentTask) -> dict[str, Any]:
    """The gold end state computed by hand from the initial database, independent of the environment's tools."""
    from examples.environments.retail_db import INITIAL_DB

    db = copy.deepcopy(INITIAL_DB)
    for action in task.data["gold_actions"]:
        args = action["arguments"]
        if action["name"] == "cancel_order":
            db["orders"][args["order_id"]].update(status="cancelled", cancel_reason=args["reason"])
        elif action["name"] == "update_address":
            db["orders"][args["order_id"]]["address"] = args["address"]
    return db


@pytest.mark.parametrize("task", _tasks("retail.jsonl"), ids=lambda t: t.task_id)
def test_retail_gold_replay_gets_full_reward(task: AgentTask) -> None:
    assert task.data["required_phrases"] and task.data["user_instructions"]
    steps, env = _run(RETAIL, task, _gold_script(task))
    assert env.db == _expected_db(task)  # type: ignore[attr-defined]
    assert steps[-1].reward == 1.0
    assert steps[-1].info == {"reward_components": {"db": 1.0, "communicate": 1.0}, "missing_phrases": []}


def test_retail_wrong_action_and_missing_phrase() -> None:
    task = next(t for t in _tasks("retail.jsonl") if t.task_id == "retail-001")
    wrong_reason = [_call("cancel_order", order_id="W1001", reason="ordered by mistake"), _say("It is cancelled.")]
    steps, _ = _run(RETAIL, task, wrong_reason)
    assert steps[-1].reward == 0.0 and steps[-1].info["reward_components"] == {"db": 0.0, "communicate": 1.0}
    extra = [*_gold_script(task)[:-1], _call("update_address", order_id="W1005", address="x"), _say("cancelled")]
    steps, _ = _run(RETAIL, task, extra)
    assert steps[-1].reward == 0.0 and steps[-1].info["reward_components"]["db"] == 0.0
    silent = [*_gold_script(task)[:-1], _say("All done.")]
    steps, _ = _run(RETAIL, task, silent)
    assert steps[-1].reward == 0.0
    assert steps[-1].info == {"reward_components": {"db": 1.0, "communicate": 0.0}, "missing_phrases": ["cancelled"]}


def test_retail_refuses_what_the_rules_forbid() -> None:
    task = next(t for t in _tasks("retail.jsonl") if t.task_id == "retail-006")
    steps, _ = _run(RETAIL, task, [_call("cancel_order", order_id="W1002", reason="no longer needed"),
                                   _say("Sorry, W1002 was already delivered.")])
    assert steps[0].observations[0].is_error and "only pending orders" in steps[0].observations[0].content
    assert steps[-1].reward == 1.0


def test_retail_broken_gold_action_is_an_environment_error() -> None:
    task = AgentTask(task_id="bad", prompt="p", data={"gold_actions": [{"name": "cancel_order", "arguments": {
        "order_id": "W1002", "reason": "no longer needed"}}], "required_phrases": []})
    env = PythonEnvironmentKind.build({"path": RETAIL}, root=REPO)
    env.reset(task)
    step = env.step(_say("hello"))
    assert step.done and step.error_source == "environment" and "gold action 0" in (step.error or "")


def test_example_tool_schemas_describe_every_tool_and_accept_the_gold_actions() -> None:
    specs = {}
    for path in (CALCULATOR, KV, RETAIL):
        for spec in PythonEnvironmentKind.validate({"path": path}, root=REPO).tool_specs():
            assert spec.description and spec.parameters["type"] == "object" and spec.parameters["required"]
            assert all(p.get("description") for p in spec.parameters["properties"].values())
            specs[spec.name] = spec
    assert specs["cancel_order"].parameters["properties"]["reason"]["enum"] == ["no longer needed",
                                                                              "ordered by mistake"]
    for task in _tasks("retail.jsonl"):
        for action in task.data["gold_actions"]:
            assert argument_errors(specs[action["name"]], action["arguments"]) == []


# -- the python kind ---------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project folder (evals/ plus a package of environments) that is not on sys.path; cleaned up after."""
    package = tmp_path / "myenvs_pkg_for_test"
    package.mkdir()
    (tmp_path / "evals").mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(textwrap.dedent("""
        from eval_pipeline.agents.tool_environment import ToolEnvironment
        from eval_pipeline.agents.tools import tool

        class Good(ToolEnvironment):
            @tool
            def ping(self) -> str:
                \"\"\"Ping.\"\"\"
                return "pong"

            def reward(self) -> float:
                return 1.0

        class BadSchema(Good):
            @tool(parameters={"type": "object", "properties": {"q": {"type": 5}}})
            def query(self, q: str) -> str:
                return q

        class NotAnEnvironment:
            def reset(self, task): ...

        class Strict:
            def __init__(self, size: int) -> None: ...
            def reset(self, task): ...
            def step(self, message): ...
            def close(self): ...

        VALUE = 3
    """))
    (package / "needs_missing.py").write_text("import a_dependency_that_is_not_installed_xyz\n")
    (package / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    saved = list(sys.path)
    yield tmp_path
    sys.path[:] = saved
    for name in [name for name in sys.modules if name.startswith("myenvs_pkg_for_test")]:
        del sys.modules[name]


def test_python_kind_finds_a_module_under_the_project_root(project: Path) -> None:
    config = {"kind": "python", "path": "myenvs_pkg_for_test.good:Good", "options": {}}
    with pytest.raises(EvalInputError) as caught:
        PythonEnvironmentKind.validate(config, file="evals/a.yaml")
    assert caught.value.field == "environment.path" and "No module named 'myenvs_pkg_for_test'" in str(caught.value)
    make = PythonEnvironmentKind.factory(config, root=project)
    first, second = make(), make()
    assert first is not second and type(first).__name__ == "Good"
    assert str(project.resolve()) == sys.path[-1]
    assert PythonEnvironmentKind.label(config) == "python:myenvs_pkg_for_test.good:Good"


@pytest.mark.parametrize(("path", "options", "field", "words"), [
    ("myenvs_pkg_for_test.nothere:X", {}, "environment.path",
     ["cannot import module 'myenvs_pkg_for_test.nothere'", "tried sys.path", "the project root",
      "No module named 'myenvs_pkg_for_test.nothere'"]),
    ("no_such_top_package_xyz.envs:X", {}, "environment.path",
     ["cannot import module 'no_such_top_package_xyz.envs'", "tried sys.path", "the project root"]),
    ("myenvs_pkg_for_test.needs_missing:X", {}, "environment.path",
     ["imports 'a_dependency_that_is_not_installed_xyz', which is not installed"]),
    ("myenvs_pkg_for_test.broken:X", {}, "environment.path", ["RuntimeError: boom at import"]),
    ("myenvs_pkg_for_test.good:Missing", {}, "environment.path",
     ["has no attribute 'Missing'", "its classes: BadSchema, Good, NotAnEnvironment, Strict"]),
    ("myenvs_pkg_for_test.good:VALUE", {}, "environment.path", ["is a int, not a class"]),
    ("myenvs_pkg_for_test.good", {}, "environment.path", ["not an import path of the form"]),
    ("myenvs_pkg_for_test.good:NotAnEnvironment", {}, "environment.path", ["it has no step, close"]),
    ("myenvs_pkg_for_test.good:Strict", {"colour": 1}, "environment.options", ["does not take these options",
                                                                                "(size: int)"]),
    ("myenvs_pkg_for_test.good:BadSchema", {}, "environment.tools.query.parameters.properties.q.type",
     ["tool 'query'", "BadSchema", "not a valid JSON schema"]),
])
def test_python_kind_rejects_bad_config_before_any_rollout(project: Path, path: str, options: dict, field: str,
                                                           words: list[str]) -> None:
    with pytest.raises(EvalInputError) as caught:
        PythonEnvironmentKind.validate({"kind": "python", "path": path, "options": options}, root=project,
                                       file="evals/agents.yaml")
    assert caught.value.field == field and caught.value.file == "evals/agents.yaml"
    for word in words:
        assert word in str(caught.value)


def test_python_kind_accepts_options_and_attribute_configs(project: Path) -> None:
    class Config:
        kind, path, options = "python", "myenvs_pkg_for_test.good:Strict", {"size": 3}

    assert PythonEnvironmentKind.validate(Config(), root=project).__name__ == "Strict"
    with pytest.raises(EvalInputError, match="needs 'path'"):
        PythonEnvironmentKind.validate({"kind": "python"}, root=project)


def test_the_registry_entry_validates_a_suite_environment_spec() -> None:
    from eval_pipeline.agents.registry import ENVIRONMENTS
    from eval_pipeline.agents.spec import EnvironmentSpec

    kind = ENVIRONMENTS.get("python")
    assert kind is PythonEnvironmentKind and kind.name == "python"
    spec = EnvironmentSpec(kind="python", path=KV, options={"store": {"a": "b"}})
    assert kind.validate(spec, "evals/agents.yaml", root=REPO).__name__ == "KeyValueEnvironment"
    env = kind.build(spec, root=REPO)
    reset = env.reset(AgentTask(task_id="t", prompt="a?"))
    assert [tool.name for tool in reset.tools] == ["get"]
    assert env.step(_call("get", key="a")).observations[0].content == "b"
    assert kind.label(spec) == f"python:{KV}"


def test_the_fingerprint_follows_the_environment_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout stored before the environment's code changed must not be served after: the environment's identity
    (part of each rollout id) holds the SHA-256 of its source file, and of its base classes' files."""
    import hashlib
    import sys

    from eval_pipeline.agents.python_env import PythonEnvironmentKind

    package = tmp_path / "fingerprinted_envs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "echo_env.py"
    source = ("from eval_pipeline.agents.tool_environment import ToolEnvironment\n\n\n"
              "class Echo(ToolEnvironment):\n    def reward(self) -> float:\n        return {}\n")
    module.write_text(source.format("1.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fingerprinted_envs.echo_env", raising=False)
    config = {"path": "fingerprinted_envs.echo_env:Echo"}
    first = PythonEnvironmentKind.fingerprint(config)
    assert first["source:fingerprinted_envs.echo_env"] == hashlib.sha256(module.read_bytes()).hexdigest()
    assert "source:eval_pipeline.agents.tool_environment" in first  # the base class's code counts too
    module.write_text(source.format("0.0"))
    second = PythonEnvironmentKind.fingerprint(config)
    assert second["source:fingerprinted_envs.echo_env"] != first["source:fingerprinted_envs.echo_env"]
    base = "source:eval_pipeline.agents.tool_environment"
    assert second[base] == first[base]


def test_a_rollout_suite_puts_the_environment_source_in_its_rollout_ids() -> None:
    from eval_pipeline.agents.registry import ENVIRONMENTS
    from eval_pipeline.suites import load_suite
    from eval_pipeline.tasks.rollout import _environment_identity

    suite = load_suite(Path(__file__).resolve().parent.parent / "evals" / "agent_quickstart.yaml")
    identity = _environment_identity(suite, ENVIRONMENTS.get("python"))
    assert identity["path"] == "examples.environments.calculator:CalculatorEnvironment"
    assert {"source:examples.environments.calculator", "source:eval_pipeline.agents.tool_environment"} <= set(identity)
