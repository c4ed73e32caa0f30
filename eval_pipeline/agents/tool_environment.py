"""A base class that makes a tool environment a few lines: tools are ``@tool`` methods, the rest is done here.

``reset`` opens the episode with the system prompt (``instructions``) and the task's prompt as the user's message,
and offers the tools. ``step`` answers the assistant's tool calls with tool messages: an unknown tool, arguments
that are not valid for its schema, or a ``ToolError`` raised by the tool are ``is_error`` results the model reads,
never crashes; any other exception in a tool is the environment's failure (an error with ``error_source``
"environment", so it never counts against the model). The episode ends when the assistant replies without tool
calls, or after a successful call of the ``submit_tool``; then ``reward()`` is called. With
``conversational=True`` (a suite with a simulated user) a reply without tool calls goes to the user instead, and the
episode ends when the loop steps the environment with the user's stop message (any ``user`` message). ``reward()``
returns a number or a ``Reward`` with named components, which land in ``Step.info["reward_components"]``.

Example::

    class Echo(ToolEnvironment):
        system_prompt = "Call echo, then answer."

        @tool
        def echo(self, text: str) -> str:
            \"\"\"Repeat the text.\"\"\"
            return text

        def reward(self) -> float:
            return float(self.task.data["expected"] in self.final_answer())
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eval_pipeline.agents.environment import AgentTask, Reset, Step
from eval_pipeline.agents.tools import TOOL_MARK, Tool, Toolbox, tool_from_function
from eval_pipeline.data.messages import ChatMessage, ToolSpec, system, user


@dataclass(frozen=True)
class Reward:
    """An episode's reward, the components it was computed from (e.g. ``{"db": 1.0, "communicate": 0.0}``) and
    any details worth keeping (the phrases not said); both land in ``Step.info``."""

    value: float
    components: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


class ToolEnvironment:
    """Subclass it, write ``@tool`` methods and ``reward()``; set ``system_prompt`` (or override ``instructions``)
    and ``setup`` for per-episode state. Options from the suite arrive as keyword arguments of the constructor."""

    system_prompt: ClassVar[str] = ""
    submit_tool: ClassVar[str | None] = None
    """A tool whose successful call ends the episode (None: only a reply without tool calls ends it)."""

    def __init__(self, conversational: bool = False, **options: Any) -> None:
        self.conversational = conversational
        self.options = options
        self.task = AgentTask(task_id="", prompt="")
        self.transcript: list[ChatMessage] = []
        self._ended = False
        self._toolbox = Toolbox(())

    # -- what a subclass writes ------------------------------------------------------------------------------

    def setup(self, task: AgentTask) -> None:
        """Per-episode state from the task (a fresh database, the key-value store); called by ``reset``."""

    def instructions(self, task: AgentTask) -> str:
        """The system prompt for this task: the tool-call protocol and how to answer."""
        return self.system_prompt

    def demonstration(self, task: AgentTask) -> tuple[ChatMessage, ...]:
        """A worked exchange shown before the task (a question, the tool call, its result, the answer): small models
        learn the tool-call format from one example far better than from a description. None by default."""
        return ()

    def reward(self) -> float | Reward:
        """The episode's reward, called once when it ends; ``self.transcript`` holds every message."""
        raise NotImplementedError(f"{type(self).__name__} must define reward()")

    # -- tools -----------------------------------------------------------------------------------------------

    @classmethod
    def environment_name(cls) -> str:
        return f"{cls.__module__}:{cls.__qualname__}"

    @classmethod
    def tool_methods(cls) -> dict[str, Any]:
        """The ``@tool`` methods of the class and its bases, by attribute name (a subclass's override wins)."""
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for attribute, value in vars(klass).items():
                if inspect.isfunction(value) and hasattr(value, TOOL_MARK):
                    found[attribute] = value
                elif attribute in found:
                    del found[attribute]
        return found

    @classmethod
    def tool_specs(cls) -> tuple[ToolSpec, ...]:
        """The specs of the tools; ``EvalInputError`` (naming this environment, the tool and the field) when a
        schema cannot be built from the type hints or an explicit one is not valid JSON schema."""
        return tuple(tool_from_function(method, environment=cls.environment_name(), skip_self=True).spec
                     for method in cls.tool_methods().values())

    def toolbox(self) -> Toolbox:
        cls = type(self)
        return Toolbox(Tool(spec=tool_from_function(method, environment=cls.environment_name(),
                                                    skip_self=True).spec,
                            function=types.MethodType(method, self))
                       for method in cls.tool_methods().values())

    # -- the Environment protocol ----------------------------------------------------------------------------

    def reset(self, task: AgentTask) -> Reset:
        self.task, self.transcript, self._ended = task, [], False
        self._toolbox = self.toolbox()
        self.setup(task)
        opening = [system(text)] if (text := self.instructions(task)) else []
        opening.extend(self.demonstration(task))
        opening.append(user(task.prompt))
        self.transcript.extend(opening)
        return Reset(messages=tuple(opening), tools=self._toolbox.specs())

    def step(self, message: ChatMessage) -> Step:
        if self._ended:
            return Step(done=True, error="step after the episode ended", error_source="environment")
        self.transcript.append(message)
        if message.role == "user":
            return self._finish(())
        if not message.tool_calls:
            return Step() if self.conversational else self._finish(())
        results: list[ChatMessage] = []
        submitted = False
        for call in message.tool_calls:
            try:
                result = self._toolbox.call(call)
            except Exception as exc:
                self._ended = True
                return Step(observations=tuple(results), done=True, error_source="environment",
                            error=f"tool {call.name!r} failed: {type(exc).__name__}: {exc}")
            results.append(result)
            submitted = submitted or (call.name == self.submit_tool and not result.is_error)
        self.transcript.extend(results)
        return self._finish(tuple(results)) if submitted else Step(observations=tuple(results))

    def close(self) -> None:
        """Release what the episode holds; nothing by default."""

    # -- helpers for reward() --------------------------------------------------------------------------------

    def assistant_messages(self) -> list[ChatMessage]:
        return [message for message in self.transcript if message.role == "assistant"]

    def final_answer(self) -> str:
        """The text of the last assistant message ("" if there is none)."""
        replies = self.assistant_messages()
        return replies[-1].text if replies else ""

    def _finish(self, observations: tuple[ChatMessage, ...]) -> Step:
        self._ended = True
        try:
            outcome = self.reward()
        except Exception as exc:
            return Step(observations=observations, done=True, error_source="environment",
                        error=f"reward failed: {type(exc).__name__}: {exc}")
        if isinstance(outcome, Reward):
            return Step(observations=observations, reward=float(outcome.value), done=True,
                        info={"reward_components": dict(outcome.components), **outcome.details})
        return Step(observations=observations, reward=float(outcome), done=True)
