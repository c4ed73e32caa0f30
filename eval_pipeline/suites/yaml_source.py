"""Reading a suite's YAML: duplicate keys refused, and the line of every key kept for error messages."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import yaml

from eval_pipeline.errors import EvalInputError

KeyPath = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _NoDuplicatesLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping naming the same key twice (plain YAML keeps the last one silently).

    Keys brought in by a merge (``<<: *base``) may be overridden: that is what a merge is for."""

    source: str | None = None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            line = key_node.start_mark.line + 1
            if key in seen:
                raise EvalInputError(f"duplicate key {key!r} (first on line {seen[key]}); YAML would silently keep "
                                     "the last one, so say it once", file=self.source, line=line, field=str(key))
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML document and the 1-based line of each key (and list item) by its path."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath | list[str | int]) -> int | None:
        """The line of the path, else of its nearest ancestor present in the file (a missing key: its parent)."""
        parts = tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in path)
        for end in range(len(parts), 0, -1):
            if parts[:end] in self.lines:
                return self.lines[parts[:end]]
        return None


def read_yaml(text: str, source: str | None = None) -> YamlDocument:
    """Parse one YAML document; errors (syntax, duplicate keys) are EvalInputErrors naming file and line."""
    loader = _NoDuplicatesLoader(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EvalInputError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=source,
                             line=mark.line + 1 if mark else None) from exc
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return YamlDocument(data, lines)


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                child = (*path, key_node.value)
                lines.setdefault(child, key_node.start_mark.line + 1)
                _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, lines)
