"""A small shop with a database behind order tools, rewarded the way τ²-bench rewards its retail domain.

The database (users and orders, a plain dict) starts from ``INITIAL_DB`` (or the task's ``db``). The reward is the
product of two components, both recorded in ``Step.info["reward_components"]``:

- ``db``: 1 when the database's end state equals the end state obtained by replaying the task's ``gold_actions``
  (``[{"name": tool, "arguments": {...}}, ...]``) on a fresh copy through the same tools, else 0;
- ``communicate``: 1 when every one of the task's ``required_phrases`` appears (case-insensitive) in the
  assistant's replies, else 0 (the phrases not said are listed in ``Step.info["missing_phrases"]``).

A task's ``user_instructions`` is the scenario for a simulated user; the ``prompt`` alone states the whole request,
so the environment also runs without one.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

from eval_pipeline.agents.environment import AgentTask
from eval_pipeline.agents.tool_environment import Reward, ToolEnvironment
from eval_pipeline.agents.tools import ToolError, tool
from eval_pipeline.data.messages import ToolCall

INITIAL_DB: dict[str, Any] = {
    "users": {
        "u1": {"name": "Ada Lovelace", "email": "ada@example.com", "orders": ["W1001", "W1002"]},
        "u2": {"name": "Alan Turing", "email": "alan@example.com", "orders": ["W1003", "W1004"]},
        "u3": {"name": "Grace Hopper", "email": "grace@example.com", "orders": ["W1005"]},
    },
    "orders": {
        "W1001": {"user_id": "u1", "status": "pending", "items": ["desk lamp"], "address": "1 Main Street, Boston",
                  "cancel_reason": None},
        "W1002": {"user_id": "u1", "status": "delivered", "items": ["notebook", "pen"],
                  "address": "1 Main Street, Boston", "cancel_reason": None},
        "W1003": {"user_id": "u2", "status": "pending", "items": ["chess set"], "address": "9 Bletchley Road, Oxford",
                  "cancel_reason": None},
        "W1004": {"user_id": "u2", "status": "shipped", "items": ["teapot"], "address": "9 Bletchley Road, Oxford",
                  "cancel_reason": None},
        "W1005": {"user_id": "u3", "status": "pending", "items": ["keyboard", "mouse"],
                  "address": "5 Navy Yard, Arlington", "cancel_reason": None},
    },
}

CancelReason = Literal["no longer needed", "ordered by mistake"]


class RetailEnvironment(ToolEnvironment):
    """Customer-service tasks (``gold_actions``, ``required_phrases``, ``user_instructions``) over a shop database."""

    system_prompt = (
        "You are a customer service agent of an online shop. Use the tools to look up users and orders and to "
        "change them; call one tool at a time, for example:\n"
        '<tool_call>{"name": "get_order", "arguments": {"order_id": "W1001"}}</tool_call>\n'
        "Only pending orders can be cancelled or have their address changed. Change nothing the customer did not "
        "ask for. When you are done, reply to the customer without a tool call and tell them what you did, "
        "including the order's new status."
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.db: dict[str, Any] = {}

    def setup(self, task: AgentTask) -> None:
        self.db = copy.deepcopy(task.data.get("db") or INITIAL_DB)

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.db["orders"].get(order_id.strip().lstrip("#"))
        if order is None:
            raise ToolError(f"no order {order_id!r}")
        return order

    @tool
    def find_user(self, email: str) -> dict[str, Any]:
        """Find a user by email address; returns the user id, name and order ids.

        Args:
            email: the user's email address.
        """
        for user_id, user in self.db["users"].items():
            if user["email"].lower() == email.strip().lower():
                return {"user_id": user_id, "name": user["name"], "orders": list(user["orders"])}
        raise ToolError(f"no user with email {email!r}")

    @tool
    def get_order(self, order_id: str) -> dict[str, Any]:
        """Show an order: its status, items and delivery address.

        Args:
            order_id: the order id, e.g. "W1001".
        """
        order = self._order(order_id)
        return {"order_id": order_id.strip().lstrip("#"), **order}

    @tool
    def cancel_order(self, order_id: str, reason: CancelReason) -> str:
        """Cancel a pending order.

        Args:
            order_id: the order id, e.g. "W1001".
            reason: why the customer cancels.
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ToolError(f"order {order_id} is {order['status']}: only pending orders can be cancelled")
        order["status"], order["cancel_reason"] = "cancelled", reason
        return f"order {order_id} is now cancelled"

    @tool
    def update_address(self, order_id: str, address: str) -> str:
        """Change the delivery address of a pending order.

        Args:
            order_id: the order id, e.g. "W1001".
            address: the new address, e.g. "12 Oak Street, Springfield".
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ToolError(f"order {order_id} is {order['status']}: only pending orders can change address")
        if not address.strip():
            raise ToolError("the address is empty")
        order["address"] = address.strip()
        return f"order {order_id} will be delivered to {order['address']}"

    def gold_db(self) -> dict[str, Any]:
        """The database after replaying the task's gold actions on a fresh copy; ValueError if one fails."""
        replay = type(self)(**self.options)
        replay.reset(self.task)
        toolbox = replay.toolbox()
        for number, action in enumerate(self.task.data.get("gold_actions") or ()):
            call = ToolCall(id=f"gold-{number}", name=action["name"],
                            arguments=json.dumps(action.get("arguments", {})))
            result = toolbox.call(call)
            if result.is_error:
                raise ValueError(f"task {self.task.task_id}: gold action {number} ({action['name']}) failed: "
                                 f"{result.text}")
        return replay.db

    def reward(self) -> Reward:
        db = 1.0 if self.db == self.gold_db() else 0.0
        said = "\n".join(message.text for message in self.assistant_messages()).lower()
        missing = [phrase for phrase in self.task.data.get("required_phrases") or () if phrase.lower() not in said]
        communicate = 0.0 if missing else 1.0
        return Reward(value=db * communicate, components={"db": db, "communicate": communicate},
                      details={"missing_phrases": missing})
