"""The evaluations package's modules import each other in no pair, deferred and ``TYPE_CHECKING`` imports included
(``tests/test_import_layers.py`` reads only the imports that run at import time): the upload describes what it
uploads with protocols instead of importing the evaluator that calls it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "eval_pipeline"


def every_import(package: str) -> dict[str, set[str]]:
    """module of ``eval_pipeline.<package>`` → the modules of that package it imports anywhere in its file."""
    folder = PACKAGE / package
    modules = {f"eval_pipeline.{package}.{path.stem}": path for path in folder.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def mutual_pairs(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted({(a, b) for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, ())})


def test_no_two_evaluation_modules_import_each_other_in_any_way() -> None:
    graph = every_import("evaluations")
    assert "eval_pipeline.evaluations.upload" in graph and "eval_pipeline.evaluations.benchmark" in graph
    assert mutual_pairs(graph) == []
    assert "eval_pipeline.evaluations.benchmark" not in graph["eval_pipeline.evaluations.upload"]


def test_the_pair_finder_sees_a_type_checking_import() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert mutual_pairs(graph) == [("a", "b")]
