"""Named extension points: backends, scorers, environments and task kinds are each a ``Registry``.

An entry is registered by name with an import path (``"package.module:attribute"``), loaded the first time it is
asked for, so registering a backend never imports torch or boto3. Plugins add entries through a Python entry point
group (``[project.entry-points."eval_pipeline.backends"]`` in their ``pyproject.toml``): ``name = "pkg.mod:attr"``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownEntryError(KeyError):
    """A name no entry is registered under; the message lists the known names and a close match."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Entries by name, each an object or an import path loaded on first use (then kept)."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._paths: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._plugins_read = False

    def register(self, name: str, target: str | T, *, replace: bool = False) -> None:
        """Add ``name``: an object, or ``"module:attribute"`` to import when first asked for."""
        if not replace and name in self.names():
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._loaded.pop(name, None)
        if isinstance(target, str):
            self._paths[name] = target
        else:
            self._paths.pop(name, None)
            self._loaded[name] = target

    def unregister(self, name: str) -> None:
        self._paths.pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> tuple[str, ...]:
        self._read_plugins()
        return tuple(sorted({*self._paths, *self._loaded}))

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The entry, imported now if it was registered by path; ``UnknownEntryError`` for an unknown name."""
        self._read_plugins()
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._paths:
            raise UnknownEntryError(self.unknown(name))
        entry = load_path(self._paths[name])
        self._loaded[name] = entry
        return entry

    def unknown(self, name: str) -> str:
        """The message for an unknown name: what is known, and the closest match."""
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; known: {', '.join(known) or 'none'}"

    def _read_plugins(self) -> None:
        if self._plugins_read or self.entry_point_group is None:
            return
        self._plugins_read = True
        for point in installed_entry_points(tuple(sys.path)).select(group=self.entry_point_group):
            if point.name not in self._paths and point.name not in self._loaded:
                self._paths[point.name] = point.value


@functools.lru_cache(maxsize=4)
def installed_entry_points(search_path: tuple[str, ...]) -> Any:
    """Every installed package's entry points on ``search_path`` (``sys.path``), read once for each (a read scans
    every installed package: ~10 ms; the registries would read them once each)."""
    return entry_points()


def load_path(path: str) -> Any:
    """The object at ``"package.module:attribute"`` (attributes may be dotted)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"not an import path of the form 'module:attribute': {path!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
