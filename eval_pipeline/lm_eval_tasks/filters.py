"""lm-eval's answer filters (``filter_list``), by name: each step maps the responses to one item (several with
``repeats``) to new responses; a pipeline's steps run in order and ``take_first`` leaves one answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eval_pipeline.registry import Registry

Step = Callable[[list[Any]], list[Any]]
"""The responses to one item → the filtered responses."""

StepFactory = Callable[..., Step]
FILTERS: Registry[StepFactory] = Registry("lm-eval filter")
"""Filter function name → a factory taking the step's options (as the YAML gives them) and giving the step."""

FILTER_OPTIONS: dict[str, frozenset[str]] = {}
"""The options each filter takes (checked when a task loads)."""


def _register(name: str, options: Sequence[str] = ()) -> Callable[[StepFactory], StepFactory]:
    def add(factory: StepFactory) -> StepFactory:
        FILTERS.register(name, factory)
        FILTER_OPTIONS[name] = frozenset(options)
        return factory
    return add


@_register("regex", ("regex_pattern", "group_select", "fallback"))
def regex(regex_pattern: str = r"#### (\-?[0-9\.\,]+)", group_select: int = 0, fallback: str = "[invalid]") -> Step:
    """The ``group_select``-th match of the pattern (``findall``; with groups, the first non-empty group of that
    match), stripped; ``fallback`` when nothing matches."""
    pattern = re.compile(regex_pattern)

    def extract(response: Any) -> str:
        matches = pattern.findall(response if isinstance(response, str) else "")
        if not matches:
            return fallback
        match = matches[group_select]
        if isinstance(match, tuple):
            match = next((group for group in match if group), fallback)
        return str(match).strip()

    return lambda responses: [extract(r) for r in responses]


@_register("take_first")
def take_first() -> Step:
    return lambda responses: responses[:1]


@_register("lowercase")
def lowercase() -> Step:
    return lambda responses: [r.lower() for r in responses]


@_register("uppercase")
def uppercase() -> Step:
    return lambda responses: [r.upper() for r in responses]


@_register("remove_whitespace")
def remove_whitespace() -> Step:
    """Leading and trailing whitespace removed (lm-eval's ``remove_whitespace`` strips)."""
    return lambda responses: [r.strip() for r in responses]


@dataclass(frozen=True)
class FilterPipeline:
    """One ``filter_list`` entry: its name (the metric suffix, ``exact_match,<name>``) and its steps."""

    name: str
    steps: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (("take_first", ()),)

    @classmethod
    def of(cls, name: str, steps: Sequence[tuple[str, Mapping[str, Any]]]) -> FilterPipeline:
        return cls(name, tuple((function, tuple(sorted(options.items()))) for function, options in steps))

    def __call__(self, responses: list[Any]) -> Any:
        """The answer scored: the responses through every step, then the first one left."""
        for function, options in self.steps:
            responses = FILTERS.get(function)(**dict(options))(list(responses))
        return responses[0] if responses else ""


NO_FILTER = FilterPipeline("none")
"""What lm-eval applies when a task has no ``filter_list``: ``take_first``, named ``none``."""
