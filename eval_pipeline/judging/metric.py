"""A judge metric: a rubric template with placeholders and a labelled rating scale."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from eval_pipeline.errors import EvalInputError

PLACEHOLDERS: tuple[str, ...] = ("prompt", "prediction", "ground_truth")
"""The fields a template may name, each written ``{{name}}``."""

PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
"""Any ``{{...}}`` in a template; group 1 is the (stripped) name inside."""


class JudgeMetricError(EvalInputError):
    """A judge metric definition (builtin name or custom definition) that cannot be used."""


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses, in order of first use."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER_RE.finditer(template):
        seen.setdefault(match.group(1), None)
    return list(seen)


def normalize_label(text: str) -> str:
    """Case-folded words of ``text`` joined by single spaces (punctuation and markup dropped)."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


@dataclass(frozen=True)
class RatingLevel:
    """One label of a rating scale and its value (``floatValue`` or ``stringValue``)."""

    definition: str
    value: float | str

    @property
    def is_float(self) -> bool:
        return not isinstance(self.value, str)


@dataclass(frozen=True)
class JudgeMetric:
    """A rubric (``instructions`` with ``{{prompt}}``, ``{{prediction}}``, ``{{ground_truth}}``) and its scale.

    Scores are normalized to [0, 1]:

    - all-float scales: ``(value − min) / (max − min)``; a scale whose values are all equal (e.g. one level)
      scores 1.0;
    - string-valued scales: by position, the first listed level 1.0, the last 0.0, linear in between
      (list the best level first, as the SageMaker examples do); a one-level scale scores 1.0.

    ``instructions_without_reference`` is the template used for an item that has no reference answer (builtins
    whose main template uses ``{{ground_truth}}``).
    """

    name: str
    instructions: str
    rating_scale: tuple[RatingLevel, ...]
    builtin: bool = False
    instructions_without_reference: str | None = None

    def __post_init__(self) -> None:
        if not self.rating_scale:
            raise JudgeMetricError(f"metric {self.name!r} has an empty rating scale", field="ratingScale")
        if len({level.is_float for level in self.rating_scale}) > 1:
            raise JudgeMetricError(f"metric {self.name!r} mixes float and string rating values",
                                   field="ratingScale")
        for level in self.rating_scale:
            if level.is_float and (isinstance(level.value, bool) or not math.isfinite(float(level.value))):
                raise JudgeMetricError(f"metric {self.name!r}: rating {level.definition!r} has a non-finite or "
                                       f"non-numeric value {level.value!r}", field="ratingScale")

    @property
    def float_scale(self) -> bool:
        """True when every level has a ``floatValue``."""
        return self.rating_scale[0].is_float

    @property
    def binary(self) -> bool:
        """Exactly two levels, so every score is 0 or 1 (McNemar's test applies to paired scores)."""
        return len(self.rating_scale) == 2

    @property
    def definitions(self) -> tuple[str, ...]:
        return tuple(level.definition for level in self.rating_scale)

    def score(self, level: RatingLevel) -> float:
        """``level``'s score in [0, 1] (see the class docstring); ValueError for a level not on this scale."""
        try:
            position = self.rating_scale.index(level)
        except ValueError:
            raise ValueError(f"{level!r} is not a level of metric {self.name!r}") from None
        if self.float_scale:
            values = [float(lvl.value) for lvl in self.rating_scale]
            low, high = min(values), max(values)
            return 1.0 if high == low else (float(level.value) - low) / (high - low)
        last = len(self.rating_scale) - 1
        return 1.0 if last == 0 else 1.0 - position / last

    def level(self, definition: str) -> RatingLevel:
        """The level whose definition is ``definition`` (exact); KeyError otherwise."""
        for level in self.rating_scale:
            if level.definition == definition:
                return level
        raise KeyError(definition)

    def template_for(self, has_reference: bool) -> str:
        """The template to render: ``instructions_without_reference`` when there is no reference and one exists."""
        if not has_reference and self.instructions_without_reference is not None:
            return self.instructions_without_reference
        return self.instructions

    def to_definition(self) -> dict[str, Any]:
        """The metric as ``{"customMetricDefinition": {...}}`` (the no-reference template is not part of it)."""
        scale = [{"definition": level.definition,
                  "value": {"floatValue": float(level.value)} if level.is_float else {"stringValue": level.value}}
                 for level in self.rating_scale]
        return {"customMetricDefinition": {"name": self.name, "instructions": self.instructions,
                                           "ratingScale": scale}}
