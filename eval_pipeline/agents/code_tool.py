"""A ready-made ``python`` tool an environment can offer the model: it runs the model's code in the sandbox.

``PYTHON_TOOL`` is its spec (``{"code": string}``); ``PythonTool(timeout_s=…, memory_mb=…).call(tool_call)`` runs
the code with ``eval_pipeline.sandbox.run_python`` (the verifier's isolation: a fresh working directory, no network
where the host allows a network namespace, memory, CPU, file and process limits) and answers with the tool message.
Its text is what the program printed (each stream cut to ``max_output_chars``), then ``[stderr]`` and what it
wrote there, then a bracketed line for a timeout, the memory limit or a non-zero exit code; ``is_error`` is set
when the program did not exit with status 0 in time. Arguments that are not a JSON object, a missing or non-string
``code`` or unknown arguments are ``is_error`` messages naming the problem: nothing the model sends makes it raise.
Only a sandbox that cannot run at all raises ``SandboxFailure``: that is the environment's failure, not the
model's (``ToolEnvironment`` records it with ``error_source="environment"``).

A ``PythonTool`` has the ``spec``, ``name`` and ``call`` of a ``Tool``, so it can sit in a ``Toolbox`` beside an
environment's own tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, tool_result
from eval_pipeline.sandbox import ProgramResult, SandboxFailure, run_python

PYTHON_TOOL = ToolSpec(
    name="python",
    description=("Run a Python 3 program in a fresh sandbox (no network, no files kept between calls) and get back "
                 "what it printed. Use print() to see values."),
    parameters={"type": "object",
                "properties": {"code": {"type": "string", "description": "The complete Python program to run."}},
                "required": ["code"], "additionalProperties": False})

DEFAULT_OUTPUT_CHARS = 4000


@dataclass(frozen=True)
class PythonTool:
    """The ``python`` tool with its limits: each call runs in its own sandbox for at most ``timeout_s`` seconds and
    ``memory_mb`` MiB, with ``files`` (relative path → text) in its working directory."""

    timeout_s: float = 10.0
    memory_mb: int = 512
    max_output_chars: int = DEFAULT_OUTPUT_CHARS
    files: Mapping[str, str] = field(default_factory=dict)
    spec: ToolSpec = PYTHON_TOOL

    @property
    def name(self) -> str:
        return self.spec.name

    def call(self, call: ToolCall) -> ChatMessage:
        """The tool message answering ``call``; raises only ``SandboxFailure`` (the sandbox could not run)."""
        code = _code_argument(call, self.spec.name)
        if isinstance(code, ChatMessage):
            return code
        result = run_python(code, timeout_s=self.timeout_s, memory_mb=self.memory_mb, files=self.files,
                            max_output_chars=self.max_output_chars)
        if result.error is not None:
            raise SandboxFailure(result.error)
        return tool_result(call, result_text(result, timeout_s=self.timeout_s, memory_mb=self.memory_mb),
                           is_error=not result.ok)


def run_python_call(call: ToolCall, *, timeout_s: float = 10.0, memory_mb: int = 512) -> ChatMessage:
    """Answer one ``python`` tool call with the default tool's output size (``PythonTool(...).call``)."""
    return PythonTool(timeout_s=timeout_s, memory_mb=memory_mb).call(call)


def result_text(result: ProgramResult, *, timeout_s: float, memory_mb: int) -> str:
    """What the model reads: stdout, then ``[stderr]`` and stderr, then how the program ended when not cleanly."""
    sections = [result.stdout]
    if result.stderr:
        sections.append("[stderr]\n" + result.stderr)
    if result.timed_out:
        sections.append(f"[timed out after {timeout_s:g} s]")
    elif result.memory_exceeded:
        sections.append(f"[ran out of memory: the limit is {memory_mb} MiB]")
    if result.exit_code not in (0, None):
        sections.append(f"[exit code {result.exit_code}]")
    text = ""
    for section in sections:
        if text and not text.endswith("\n"):
            text += "\n"
        text += section
    return text or "(no output)"


def _code_argument(call: ToolCall, name: str) -> str | ChatMessage:
    """The ``code`` argument, or the ``is_error`` message that says what is wrong with the call."""
    if call.name != name:
        return tool_result(call, f"Error: this tool is {name!r}, not {call.name!r}", is_error=True)
    try:
        arguments: dict[str, Any] = call.parsed_arguments()
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deeply to parse
        return tool_result(call, f"Error: the arguments of {name!r} must be a JSON object like "
                                 f'{{"code": "print(1)"}}: {exc}', is_error=True)
    unknown = sorted(set(arguments) - {"code"})
    if unknown:
        return tool_result(call, f"Error: {name!r} takes only the argument 'code', not {', '.join(map(repr, unknown))}",
                           is_error=True)
    code = arguments.get("code")
    if not isinstance(code, str):
        problem = "is missing" if "code" not in arguments else f"must be a string, not {type(code).__name__}"
        return tool_result(call, f"Error: the argument 'code' of {name!r} {problem}", is_error=True)
    return code
