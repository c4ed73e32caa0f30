"""A key-value store behind a ``get`` tool: look the key up, answer the value.

A task holds its ``store`` (a mapping; the environment's ``store`` option is the fallback) and the ``expected``
value; the reward is 1 when the value appears in the last assistant message (case-insensitive), else 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eval_pipeline.agents.environment import AgentTask
from eval_pipeline.agents.tool_environment import ToolEnvironment
from eval_pipeline.agents.tools import ToolError, tool
from eval_pipeline.data.messages import ChatMessage, ToolCall, assistant, tool_result, user


class KeyValueEnvironment(ToolEnvironment):
    """Lookup tasks (``store``, ``expected``) with a ``get(key)`` tool."""

    system_prompt = (
        "You can read a key-value store with the tool get. Call it once with the key you are asked about, "
        "for example:\n"
        '<tool_call>{"name": "get", "arguments": {"key": "color"}}</tool_call>\n'
        "When the value comes back, reply with the value, without a tool call."
    )

    def __init__(self, store: Mapping[str, Any] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.default_store = dict(store or {})
        self.store: dict[str, Any] = {}

    def demonstration(self, task: AgentTask) -> tuple[ChatMessage, ...]:
        """One worked lookup (the key ``shape``, in no task's store), so a small model sees the call format in use."""
        call = ToolCall(id="call_example", name="get", arguments='{"key": "shape"}')
        return (user('What is the value stored under the key "shape"?'), assistant("", [call]),
                tool_result(call, "round"), assistant("The value is round."))

    def setup(self, task: AgentTask) -> None:
        self.store = dict(task.data.get("store") or self.default_store)

    @tool
    def get(self, key: str) -> str:
        """Return the value stored under a key.

        Args:
            key: the key to look up, e.g. "color".
        """
        wanted = key.strip().strip("\"'").strip()
        for name, value in self.store.items():
            if name == wanted or name.lower() == wanted.lower():
                return str(value)
        raise ToolError(f"no key {wanted!r}; the keys are: {', '.join(sorted(self.store))}")

    def reward(self) -> float:
        expected = str(self.task.data["expected"]).strip().lower()
        return 1.0 if expected and expected in self.final_answer().lower() else 0.0
