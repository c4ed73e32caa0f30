"""Reading suite files, with errors that name the file and the key."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites.checks import SuiteProblem, suite_problems
from eval_pipeline.suites.spec import Suite
from eval_pipeline.suites.yaml_source import YamlDocument, read_yaml

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_suite(path: str | Path) -> Suite:
    """Load and validate one suite file, whole: its keys and types, then the names it uses (scorers, judge
    metrics), its numbers against each other and its backends (temperature, pass@k), and its schedule."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError("suite file not found", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvalInputError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from exc
    document = read_yaml(text, str(path))
    if not isinstance(document.data, dict):
        raise EvalInputError("a suite file must be a mapping of keys", file=str(path))
    raw = _expand_env(document.data)
    folder = path.resolve().parent
    base_dir = folder.parent if folder.name == "evals" else folder
    try:
        suite = Suite.model_validate({**raw, "source_path": str(path.resolve()), "base_dir": str(base_dir)})
    except ValidationError as exc:
        raise _located(exc, path, document) from None
    for problem in suite_problems(suite):
        raise _problem_at(problem, path, document)
    return suite


def load_suites(folder: str | Path | None = None) -> list[Suite]:
    """Every ``*.yaml`` suite in a folder (default: ``$EVAL_PIPELINE_SUITES`` or ``./evals``)."""
    folder = Path(folder) if folder else paths.suites_dir()
    suites = [load_suite(p) for p in sorted(folder.glob("*.y*ml"))]
    names = [s.suite for s in suites]
    for name in set(names):
        if names.count(name) > 1:
            raise EvalInputError(f"two suite files use the suite name {name!r}", file=str(folder))
    return suites


def find_suite(name_or_path: str) -> Suite:
    """A suite by file path, or by name among the suites folder."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return load_suite(candidate)
    for suffix in (".yaml", ".yml"):
        path = paths.suites_dir() / f"{name_or_path}{suffix}"
        if path.is_file():
            return load_suite(path)
    for suite in load_suites():
        if suite.suite == name_or_path:
            return suite
    raise EvalInputError(f"no suite named {name_or_path!r} in {paths.suites_dir()}")


def _expand_env(value: Any) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in strings; EVAL_PIPELINE_HOME defaults to the state folder."""
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, str):
        def lookup(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name == paths.HOME_ENV:
                return str(paths.home())
            return os.environ.get(name, default if default is not None else match.group(0))
        return _ENV_REFERENCE.sub(lookup, value)
    return value


def _problem_at(problem: SuiteProblem, path: Path, document: YamlDocument) -> EvalInputError:
    return EvalInputError(problem.reason, file=str(path), line=document.line_of(problem.path), field=problem.field)


def _located(exc: ValidationError, path: Path, document: YamlDocument) -> EvalInputError:
    first = exc.errors()[0]
    location = [str(part) for part in first["loc"] if not _union_member_tag(str(part))]
    key = ".".join(location) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = f"unknown key {location[-1]!r}"
        allowed = _allowed_keys(location[:-1])
        close = difflib.get_close_matches(location[-1], allowed, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif allowed:
            message += f"; allowed keys: {', '.join(allowed)}"
    elif first["type"] == "missing":
        message = "required key is missing"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return EvalInputError(message, file=str(path), line=document.line_of(location), field=key)


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _union_member_tag(part: str) -> bool:
    """A location part naming which member of a union failed (``str``, ``EvaluationMetadata``,
    ``function-after[...]``), not a key of the file: suite keys start in lower case."""
    return "[" in part or part[:1].isupper() or part in _TYPE_TAGS


def _allowed_keys(location: list[str]) -> list[str]:
    model: type[BaseModel] = Suite
    for part in location:
        if part.isdigit():
            continue
        annotation = model.model_fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = next((a for a in inner if issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return [name for name in model.model_fields if name not in ("source_path", "base_dir")]
