"""The ``python`` tool: its spec, a tool call run in the sandbox and answered with a tool message, and the model's
bad calls answered with error messages instead of exceptions."""

from __future__ import annotations

import json
import sys

import pytest
from jsonschema.validators import validator_for

from eval_pipeline.agents.code_tool import PYTHON_TOOL, PythonTool, run_python_call
from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is tested on Linux")


def python_call(arguments: object, call_id: str = "call-1") -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=call_id, name="python", arguments=text)


def test_the_spec_is_a_valid_schema_taking_code() -> None:
    assert PYTHON_TOOL.name == "python" and PythonTool().name == "python"
    schema = PYTHON_TOOL.parameters
    validator_for(schema).check_schema(schema)
    validator = validator_for(schema)(schema)
    assert validator.is_valid({"code": "print(1)"})
    assert not validator.is_valid({}) and not validator.is_valid({"code": 1})
    assert not validator.is_valid({"code": "x", "other": 1})
    assert ToolSpec.from_dict(json.loads(json.dumps(PYTHON_TOOL.to_dict()))) == PYTHON_TOOL


def test_a_call_round_trips_to_a_tool_message() -> None:
    call = python_call({"code": "print(6 * 7)"}, call_id="abc")
    message = run_python_call(call)
    assert message == ChatMessage(role="tool", content="42\n", tool_call_id="abc", name="python")
    assert ChatMessage.from_dict(json.loads(json.dumps(message.to_dict()))) == message


def test_stdout_and_stderr_both_reach_the_model() -> None:
    code = "import sys\nprint('out')\nprint('warn', file=sys.stderr)\n"
    message = run_python_call(python_call({"code": code}))
    assert message.content == "out\n[stderr]\nwarn\n" and not message.is_error
    assert run_python_call(python_call({"code": "x = 1"})).content == "(no output)"


def test_a_failing_program_is_an_error_result() -> None:
    message = run_python_call(python_call({"code": "print('before')\nraise ValueError('boom')\n"}))
    assert message.is_error and message.content.startswith("before\n[stderr]\nTraceback")
    assert "ValueError: boom" in message.content and message.content.endswith("[exit code 1]")
    exited = run_python_call(python_call({"code": "import sys\nsys.exit(4)\n"}))
    assert exited.is_error and exited.content == "[exit code 4]"


def test_a_program_past_its_budget_is_an_error_result() -> None:
    message = PythonTool(timeout_s=0.5, memory_mb=256).call(python_call({"code": "while True:\n    pass\n"}))
    assert message.is_error and message.content == "[timed out after 0.5 s]"


def test_a_program_past_its_memory_is_an_error_result() -> None:
    message = PythonTool(memory_mb=256).call(python_call({"code": "x = bytearray(1024 * 2**20)\n"}))
    assert message.is_error and "MemoryError" in message.content
    assert "[ran out of memory: the limit is 256 MiB]" in message.content and message.content.endswith("[exit code 1]")


def test_long_output_is_cut() -> None:
    message = PythonTool(max_output_chars=100).call(python_call({"code": "print('a' * 1000 + 'END')\n"}))
    assert len(message.content) < 200 and message.content.startswith("a" * 50) and message.content.endswith("END\n")
    assert "characters cut" in message.content and not message.is_error


def test_files_of_the_environment_are_in_the_working_directory() -> None:
    tool = PythonTool(files={"table.csv": "a,b\n1,2\n"})
    assert tool.call(python_call({"code": "print(open('table.csv').read().split()[1])"})).content == "1,2\n"


@pytest.mark.parametrize(("arguments", "expected"), [
    ("{not json", "must be a JSON object"),
    ("[1, 2]", "must be a JSON object"),
    ("null", "must be a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "must be a JSON object"),
    ("{}", "the argument 'code' of 'python' is missing"),
    ('{"code": 5}', "the argument 'code' of 'python' must be a string, not int"),
    ('{"code": "print(1)", "timeout": 99}', "takes only the argument 'code', not 'timeout'"),
], ids=["not-json", "array", "null", "too-deep", "missing", "not-a-string", "extra"])
def test_bad_arguments_are_error_messages_naming_the_problem(arguments: str, expected: str) -> None:
    message = run_python_call(python_call(arguments, call_id="bad"))
    assert message.is_error and expected in message.content and message.tool_call_id == "bad"
    assert message.content.startswith("Error: ")


def test_a_call_for_another_tool_is_an_error_message() -> None:
    message = PythonTool().call(ToolCall(id="x", name="shell", arguments='{"code": "print(1)"}'))
    assert message.is_error and "'python', not 'shell'" in message.content


def test_it_sits_in_a_toolbox_beside_other_tools() -> None:
    from eval_pipeline.agents.tools import Toolbox

    box = Toolbox([PythonTool()])
    assert box.specs() == (PYTHON_TOOL,)
    assert box.call(python_call({"code": "print('hi')"})).content == "hi\n"
