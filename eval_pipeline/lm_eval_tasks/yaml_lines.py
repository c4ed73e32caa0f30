"""A task YAML parsed with the line of every key, for errors that point at the line (lm-eval's files are plain
YAML; its ``!function`` tags are refused before parsing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from eval_pipeline.errors import EvalInputError

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LinedYaml:
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: list[str]) -> int | None:
        """The line of the key path, else of its nearest ancestor in the file."""
        parts = tuple(int(p) if p.isdigit() else p for p in path)
        return next((self.lines[parts[:end]] for end in range(len(parts), 0, -1) if parts[:end] in self.lines), None)


def read_lined_yaml(text: str, source: str) -> LinedYaml:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EvalInputError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=source,
                             line=mark.line + 1 if mark else None) from None
    lines: dict[KeyPath, int] = {}
    pending: list[tuple[yaml.Node, KeyPath]] = [(node, ())] if node is not None else []
    while pending:
        current, path = pending.pop()
        children = (current.value if isinstance(current, yaml.MappingNode) else
                    list(enumerate(current.value)) if isinstance(current, yaml.SequenceNode) else [])
        for key, value in children:
            name = key.value if isinstance(key, yaml.Node) else key
            lines.setdefault((*path, name), (key if isinstance(key, yaml.Node) else value).start_mark.line + 1)
            pending.append((value, (*path, name)))
    return LinedYaml(data, lines)
