"""The ``python`` environment kind: an environment class named by import path in a suite.

```yaml
environment: {kind: python, path: "examples.environments.calculator:CalculatorEnvironment", options: {...}}
```

``path`` is ``module:Class``; ``options`` are the class's keyword arguments. The module is imported as it is; when
it is not importable (its top package is not on ``sys.path``, e.g. ``examples`` run by the installed
``eval-pipeline`` command) the suite's project root (the folder holding ``evals/``) is appended to ``sys.path`` and
the import tried again; appended, so it never shadows an installed package. Everything is checked when the suite
loads: the module imports, the class exists and has ``reset``, ``step`` and ``close``, the options fit its
constructor, and its tools' schemas (a class with ``tool_specs()``, such as a ``ToolEnvironment``) are valid JSON
schema. A problem is an ``EvalInputError`` naming the suite file and the field, with what was tried. One instance
is built per rollout.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from eval_pipeline.agents.environment import Environment
from eval_pipeline.agents.tools import check_tool_schemas
from eval_pipeline.errors import EvalInputError

REQUIRED_METHODS = ("reset", "step", "close")


class PythonEnvironmentKind:
    """The ``python`` kind. Its methods are classmethods, so the class itself is the registered object."""

    name: ClassVar[str] = "python"
    provides: ClassVar[str] = "environment"
    """An environment the model under test acts in (with its tools)."""

    @classmethod
    def validate(cls, config: Any, file: str | None = None, *, root: str | Path | None = None,
                 field: str = "environment") -> type:
        """The environment class ``config`` names, after every check; ``EvalInputError`` for the first failure."""
        path, options = _setting(config, "path"), _setting(config, "options") or {}
        if not isinstance(path, str) or not path.strip():
            raise EvalInputError("a python environment needs 'path': 'package.module:Class'", file=file,
                                 field=f"{field}.path")
        if not isinstance(options, Mapping):
            raise EvalInputError(f"options must be a mapping, not {type(options).__name__}", file=file,
                                 field=f"{field}.options")
        target = load_environment_class(path, root=root, file=file, field=f"{field}.path")
        try:
            inspect.signature(target).bind(**options)
        except TypeError as exc:
            raise EvalInputError(f"environment {path!r} does not take these options ({exc}); its constructor is "
                                 f"{target.__name__}{_signature(target)}", file=file,
                                 field=f"{field}.options") from None
        specs = getattr(target, "tool_specs", None)
        if callable(specs):
            try:
                tools = tuple(specs())
            except EvalInputError as exc:
                raise EvalInputError(exc.reason, file=file,
                                     field=f"{field}.{exc.field}" if exc.field else field) from None
            check_tool_schemas(tools, environment=path, file=file, field_prefix=f"{field}.tools")
        return target

    @classmethod
    def factory(cls, config: Any, *, root: str | Path | None = None, file: str | None = None,
                field: str = "environment") -> Callable[[], Environment]:
        """A function that builds one fresh environment per call (one per rollout), after ``validate``."""
        target = cls.validate(config, root=root, file=file, field=field)
        return functools.partial(target, **dict(_setting(config, "options") or {}))

    @classmethod
    def build(cls, config: Any, *, root: str | Path | None = None, file: str | None = None,
              **_hooks: Any) -> Environment:
        """One environment instance (for one rollout)."""
        return cls.factory(config, root=root, file=file)()

    @classmethod
    def fingerprint(cls, config: Any, *, root: str | Path | None = None) -> dict[str, str]:
        """What about the environment's code changes its rollouts: the SHA-256 of the source file of its class
        and of each base class defined outside the standard library (part of each rollout's id, so a rollout
        stored before the environment was edited is not served after)."""
        target = cls.validate(config, root=root)
        sources = {}
        for klass in inspect.getmro(target):
            module = sys.modules.get(klass.__module__)
            location = getattr(module, "__file__", None)
            if location and klass.__module__.split(".")[0] not in sys.stdlib_module_names:
                sources[klass.__module__] = hashlib.sha256(Path(location).read_bytes()).hexdigest()
        return {f"source:{name}": digest for name, digest in sorted(sources.items())}

    @classmethod
    def label(cls, config: Any) -> str:
        """How rows name the environment: ``python:<path>``."""
        return f"{cls.name}:{_setting(config, 'path')}"


def load_environment_class(path: str, *, root: str | Path | None = None, file: str | None = None,
                           field: str = "environment.path") -> type:
    """The class at ``module:Class`` (imported, with the project root as a fallback), checked to have the
    ``Environment`` methods."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise EvalInputError(f"{path!r} is not an import path of the form 'package.module:Class'", file=file,
                             field=field)
    module = import_module(module_name, root=root, file=file, field=field)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            public = sorted(name for name, value in vars(module).items()
                            if inspect.isclass(value) and not name.startswith("_"))
            raise EvalInputError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no attribute "
                                 f"{attribute!r}; its classes: {', '.join(public) or 'none'}", file=file,
                                 field=field)
        target = getattr(target, part)
    if not inspect.isclass(target):
        raise EvalInputError(f"{path!r} is a {type(target).__name__}, not a class implementing Environment",
                             file=file, field=field)
    missing = [method for method in REQUIRED_METHODS if not callable(getattr(target, method, None))]
    if missing:
        raise EvalInputError(f"{path!r} is not an Environment: it has no {', '.join(missing)} (an environment "
                             f"has reset(task), step(message) and close())", file=file, field=field)
    return target


def import_module(module_name: str, *, root: str | Path | None = None, file: str | None = None,
                  field: str = "environment.path") -> Any:
    """Import ``module_name``; if it (or its package) is not found, append ``root`` to ``sys.path`` and retry.
    ``EvalInputError`` lists what was tried and why each attempt failed."""
    tried: list[str] = []
    for attempt in ("sys.path", "project root"):
        if attempt == "project root":
            if root is None:
                break
            folder = str(Path(root).resolve())
            if folder not in sys.path:
                sys.path.append(folder)
                importlib.invalidate_caches()
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not _is_prefix(exc.name, module_name):
                raise EvalInputError(f"importing {module_name!r} failed: it imports {exc.name!r}, which is not "
                                     f"installed ({exc})", file=file, field=field) from None
            where = "sys.path" if attempt == "sys.path" else f"the project root {Path(root or '').resolve()}"
            tried.append(f"{where}: {exc}")
        except Exception as exc:
            raise EvalInputError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", file=file,
                                 field=field) from None
    raise EvalInputError(f"cannot import module {module_name!r}; tried " + "; ".join(tried), file=file,
                         field=field)


def _is_prefix(missing: str, module_name: str) -> bool:
    """Whether the missing module is ``module_name`` or one of its packages (not a dependency it imports)."""
    return module_name == missing or module_name.startswith(missing + ".")


def _setting(config: Any, name: str) -> Any:
    if isinstance(config, Mapping):
        return config.get(name)
    return getattr(config, name, None)


def _signature(target: type) -> str:
    try:
        return str(inspect.signature(target))
    except (TypeError, ValueError):
        return "(...)"
