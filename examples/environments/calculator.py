"""Arithmetic with a calculator tool: one ``calculate`` call, then the answer.

A task's ``expected`` is the number; the reward is 1 when that number appears anywhere in the last assistant
message (lenient on purpose: "The answer is 42." and "17 + 25 = 42" both pass), else 0.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from eval_pipeline.agents.environment import AgentTask
from eval_pipeline.agents.tool_environment import ToolEnvironment
from eval_pipeline.agents.tools import ToolError, tool
from eval_pipeline.data.messages import ChatMessage, ToolCall, assistant, tool_result, user

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
MAX_EXPONENT = 100


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression of numbers, + - * / // % ** and parentheses (nothing else runs)."""
    text = expression.replace("×", "*").replace("÷", "/").replace("^", "**").strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot parse {expression!r} as an arithmetic expression") from None
    return _value(tree.body, expression)


def _value(node: ast.AST, expression: str) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand, expression))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left, expression), _value(node.right, expression)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is too large")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
    raise ToolError(f"{expression!r} is not plain arithmetic (numbers, + - * / // % ** and parentheses only)")


def format_number(value: float | int) -> str:
    """Integers without a decimal point, other numbers to 10 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value) if isinstance(value, int) else f"{value:.10g}"


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` (``1,234`` read as 1234)."""
    return [float(match.replace(",", "")) for match in _NUMBER.findall(text)]


def mentions_number(text: str, expected: float) -> bool:
    return any(math.isclose(number, expected, rel_tol=1e-6, abs_tol=1e-9) for number in numbers_in(text))


class CalculatorEnvironment(ToolEnvironment):
    """Arithmetic tasks (``expected``: the number) with a ``calculate`` tool."""

    system_prompt = (
        "You are a careful assistant with a calculator tool named calculate. To compute, call it once with the "
        "arithmetic expression, for example:\n"
        '<tool_call>{"name": "calculate", "arguments": {"expression": "12 * 7"}}</tool_call>\n'
        "When the result comes back, reply with the final answer as a number, without a tool call."
    )

    @tool
    def calculate(self, expression: str) -> str:
        """Evaluate an arithmetic expression and return its value.

        Args:
            expression: numbers with + - * / and parentheses, e.g. "12 * (3 + 4)".
        """
        return format_number(evaluate(expression))

    def demonstration(self, task: AgentTask) -> tuple[ChatMessage, ...]:
        """One worked example (13 * 3 with the tool; no task's answer is 39): it takes the embedded 135M model from
        almost never calling the tool to calling it in about 40% of first turns."""
        call = ToolCall(id="call_example", name="calculate", arguments='{"expression": "13 * 3"}')
        return (user("What is 13 * 3? Use the calculator."), assistant("", [call]), tool_result(call, "39"),
                assistant("The answer is 39."))

    def reward(self) -> float:
        return 1.0 if mentions_number(self.final_answer(), float(self.task.data["expected"])) else 0.0
