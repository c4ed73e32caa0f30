"""Prompt templates over an item's fields, rendered as lm-eval renders them: a field name gives the field, anything
else is a Jinja template (strict: an unknown field is an error) with lm-eval's ``regex_replace`` filter."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateError

Doc = Mapping[str, Any]
Field = str | int | list[Any] | dict[str, Any] | None
"""A template field as written: a field name, a Jinja template, a constant index, or a constant list/mapping."""


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


_ENV = Environment(loader=BaseLoader(), undefined=StrictUndefined, keep_trailing_newline=True)
_ENV.filters["regex_replace"] = _regex_replace


class TemplateProblem(ValueError):
    """A template that does not render for an item, or renders to the wrong kind of value."""


def compile_template(source: str) -> None:
    """Raise ``TemplateProblem`` when ``source`` is not valid Jinja (checked when a suite loads)."""
    try:
        _ENV.from_string(source)
    except TemplateError as exc:
        raise TemplateProblem(f"not a valid Jinja template: {exc}") from None


def render(source: str, doc: Doc) -> str:
    """``source`` rendered over the item's fields."""
    try:
        return _ENV.from_string(source).render(**doc)
    except TemplateError as exc:
        raise TemplateProblem(f"template {source!r}: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class PromptTemplate:
    """How an item becomes a prompt: ``doc_to_text`` the question, ``doc_to_target`` the answer (a string, or with
    choices the index of the right one), ``doc_to_choice`` the choices; the delimiters join question and answer and
    separate few-shot examples; ``description`` comes before everything."""

    doc_to_text: Field = None
    doc_to_target: Field = None
    doc_to_choice: Field = None
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    description: str = ""

    def text(self, doc: Doc) -> str:
        value = self._field(self.doc_to_text, doc, "doc_to_text")
        if self.doc_to_choice is not None and isinstance(value, str) and value.isdigit():
            raise TemplateProblem("doc_to_text gives a number: several contexts per item (Winogrande-style) "
                                  "are not supported")
        if not isinstance(value, str):
            raise TemplateProblem(f"doc_to_text must give a string, got {type(value).__name__}")
        return value

    def target(self, doc: Doc) -> str | int | list[Any]:
        """The answer: a string, an index into the choices, or a list (several golds)."""
        value = self._field(self.doc_to_target, doc, "doc_to_target")
        if _is_field(self.doc_to_target, doc) or not isinstance(value, str):
            return value  # a field's value as it is (lm-eval converts rendered templates only)
        if self.doc_to_choice is not None and value.isdigit():
            return int(value)
        if len(value) >= 2 and value[0] == "[" and value[-1] == "]":
            try:
                return list(ast.literal_eval(value))
            except (SyntaxError, ValueError):
                return value
        return value

    def choices(self, doc: Doc) -> list[str] | None:
        if self.doc_to_choice is None:
            return None
        source = self.doc_to_choice
        if isinstance(source, list):
            value: Any = source
        elif isinstance(source, dict):
            value = list(source.values())
        elif _is_field(source, doc):
            value = doc[str(source)]
        else:
            rendered = render(str(source), doc)
            try:
                value = ast.literal_eval(rendered)
            except (SyntaxError, ValueError):
                raise TemplateProblem(f"doc_to_choice must render a Python list literal, got {rendered!r}") from None
        if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
            raise TemplateProblem(f"doc_to_choice must give a list of strings, got {value!r}")
        return list(value)

    def answer_text(self, doc: Doc) -> str:
        """The answer as text (a few-shot example's answer, a generation's reference): the target, or the choice it
        points at; the first of several golds."""
        target, choices = self.target(doc), self.choices(doc)
        if isinstance(target, int) and choices:
            if not 0 <= target < len(choices):
                raise TemplateProblem(f"target index {target} is out of range for {len(choices)} choices")
            return choices[target]
        if isinstance(target, list):
            target = target[0] if target else ""
        return str(target)

    def _field(self, source: Field, doc: Doc, name: str) -> Any:
        if source is None:
            raise TemplateProblem(f"{name} is not set")
        if isinstance(source, int | list):
            return source
        if isinstance(source, dict):
            raise TemplateProblem(f"{name} must be a field name or a template, not a mapping")
        if _is_field(source, doc):
            return doc[source]
        return render(source, doc)


def _is_field(source: Any, doc: Doc) -> bool:
    return isinstance(source, str) and source in doc


def check_fields(template: PromptTemplate) -> None:
    """Raise ``TemplateProblem`` naming the first field whose template does not compile."""
    for name in ("doc_to_text", "doc_to_target", "doc_to_choice"):
        source = getattr(template, name)
        if isinstance(source, str):
            try:
                compile_template(source)
            except TemplateProblem as exc:
                raise TemplateProblem(f"{name}: {exc}") from None
