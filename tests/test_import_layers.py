"""The import graph, read statically: no module imports one that imports it back, and the library never reaches
the Dagster layer (so ``suites/`` stays importable by the library it validates against)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "eval_pipeline"
LIBRARY = (
    "data", "inference", "judging", "scoring", "metrics", "evaluations", "tracking", "suites", "errors", "paths",
    "file_lock", "process_identity", "agents", "registry", "tasks", "sandbox", "traces", "text_table", "report",
    "lm_eval_tasks", "interop",
)
DAGSTER_LAYER = (
    "assets", "resources", "automation", "definitions", "suite_definitions", "sdk", "cli", "cli_batch",
    "cli_backfill", "cli_report", "cli_inspect", "backfills", "run_executors", "execution", "instance", "stale_runs",
    "event_log_storage",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("eval_pipeline", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runtime_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: module level, including under if/try, but not under
    ``if TYPE_CHECKING`` nor inside functions (a deferred import is how a layer reaches up on purpose)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _runtime_imports(node.body)
            yield from _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _runtime_imports(block)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """module → the eval_pipeline modules importing it runs (a package's ``__init__`` counted as a module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            own = set(_ancestors(name)) | {name}
            for target in targets:
                for module in (*_ancestors(target), target):
                    if module in modules and module not in own:
                        graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending += graph.get(module, ())
    return seen


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_library_never_reaches_the_dagster_layer() -> None:
    graph = import_graph()
    layer = tuple(f"eval_pipeline.{name}" for name in DAGSTER_LAYER)
    for package in LIBRARY:
        for module in [m for m in graph if m == f"eval_pipeline.{package}" or
                       m.startswith(f"eval_pipeline.{package}.")]:
            reached = sorted(m for m in reachable(graph, module) if m.startswith(layer))
            assert not reached, f"{module} imports the Dagster layer: {reached}"
            source = _modules()[module].read_text()
            dagster = [n for n in _runtime_imports(ast.parse(source).body) if "dagster" in ast.unparse(n)]
            assert not dagster, f"{module} imports dagster"


def test_suites_can_be_imported_first_by_the_library() -> None:
    """Importing a library module that uses the suite spec, then the loader, in a fresh interpreter works in any
    order (a cycle through ``suites`` would fail on a partly initialised module)."""
    import subprocess
    import sys

    for first in ("eval_pipeline.scoring.registry", "eval_pipeline.judging.setup", "eval_pipeline.inference.backends",
                  "eval_pipeline.suites.checks", "eval_pipeline.suites"):
        done = subprocess.run([sys.executable, "-c", f"import {first}; import eval_pipeline.suites.loading"],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


def package_edges() -> dict[str, set[str]]:
    """Top-level package (or module) of eval_pipeline → those it imports anywhere in its files, deferred and
    ``TYPE_CHECKING`` imports included (a dependency on paper is a dependency), ``from eval_pipeline import paths``
    too."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = path.relative_to(PACKAGE).with_suffix("").parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [f"eval_pipeline.{alias.name}" for alias in node.names] if isinstance(node, ast.ImportFrom)
                     and node.level == 0 and node.module == "eval_pipeline" else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "eval_pipeline" and len(parts) > 1 and parts[1] != source:
                    edges.setdefault(source, set()).add(parts[1])
    return edges


def test_no_library_package_imports_one_that_imports_it_back() -> None:
    edges = package_edges()
    pairs = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets
                    if a in edges.get(b, ()) and a in LIBRARY and b in LIBRARY})
    assert pairs == [], f"library packages importing each other: {pairs}"


def library_package_graph() -> dict[str, set[str]]:
    """``package_edges`` restricted to the library's packages (those present: a package being written may not be)."""
    edges = package_edges()
    present = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()}
    library = [name for name in LIBRARY if name in present]
    return {name: {target for target in edges.get(name, ()) if target in library} for name in library}


def test_the_library_packages_form_no_cycle_of_any_length() -> None:
    """Not only no two packages importing each other: no chain of them leads back to where it started."""
    graph = library_package_graph()
    assert "suites" in graph and "inference" in graph
    assert cycles(graph) == [], f"library packages in an import cycle: {cycles(graph)}"


def test_the_package_cycle_check_sees_a_three_package_cycle() -> None:
    graph = library_package_graph()
    graph["data"] = {*graph["data"], "scoring"}  # data -> scoring -> metrics -> data would close a loop
    graph["scoring"] = {*graph["scoring"], "metrics"}
    graph["metrics"] = {*graph["metrics"], "data"}
    assert any({"data", "scoring", "metrics"} <= set(component) for component in cycles(graph))


def test_package_edges_count_an_import_of_a_module_from_the_package_itself() -> None:
    assert "paths" in package_edges()["inference"]  # vllm.py: ``from eval_pipeline import paths``
