"""``RolloutHyperparameters``: the rollout hyperparameters of a ``MultiTurnRLEvaluator`` as attributes, in the shape
of the SageMaker SDK's ``FineTuningOptions`` (attribute read and write, ``to_dict()``, ``get_info()``).

Every assignment is validated by ``RolloutSpec`` (``eval_pipeline.agents.spec``) itself, strictly typed, with the
other values as they stand, so a range or a cross-field rule (``pass_k_values`` ≤ ``eval_group_size``) is the one the
suite file obeys; the ranges that ``get_info()`` reports are read from the pydantic fields, never restated here.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from collections.abc import Callable
from functools import cache
from typing import Any

import annotated_types
from pydantic import ValidationError

from eval_pipeline.agents.spec import RolloutSpec
from eval_pipeline.errors import EvalInputError

SEED_PARAMETERS = ("eval_group_size", "sampling_temperature", "top_p", "max_tokens", "pass_k_values",
                   "success_threshold")
"""The names SageMaker's multi-turn RL evaluator exposes, first in every listing."""
EXCLUDED = ("stopping_condition",)
"""RolloutSpec fields that are an evaluator argument of their own, not a hyperparameter."""
_EXTRA_DESCRIPTIONS = {
    "sampling_temperature": "The sampling temperature of the model's turns (0 is greedy).",
    "top_p": "Nucleus sampling: the probability mass the model's tokens are drawn from.",
    "pass_k_values": "The k of each pass@k and pass^k reported (each at most eval_group_size).",
    "concurrency": "Rollouts run at once.",
    "seed": "The sampling seed (and the seed of the bootstrap intervals).",
}
"""Descriptions of the fields that have no attribute docstring in ``RolloutSpec``."""


def parameter_names() -> tuple[str, ...]:
    """The seed's six names, then the other RolloutSpec fields, in declaration order."""
    others = [name for name in RolloutSpec.model_fields if name not in SEED_PARAMETERS and name not in EXCLUDED]
    return (*SEED_PARAMETERS, *others)


class RolloutHyperparameters:
    """Attribute access to the rollout hyperparameters; ``hp.eval_group_size = 8`` is validated at once (a
    ``EvalInputError``, a ``ValueError``, naming the parameter and the rule) and applies to the next ``evaluate()``.

    ``MultiTurnRLEvaluator.hyperparameters`` is one; the names are the seed's six (eval_group_size,
    sampling_temperature, top_p, max_tokens, pass_k_values, success_threshold), then max_turns, call_timeout_s,
    concurrency and seed. An unknown name is an ``AttributeError`` listing the known ones.

    Args:
        values: Initial values by name (``{"eval_group_size": 8}``). Default: ``RolloutSpec``'s defaults.
        check: Called with each new ``RolloutSpec`` before it is taken (the evaluator checks its whole suite
            with it, e.g. a temperature the model's backend refuses); what it raises rejects the change.

    Example:
        >>> hp = evaluator.hyperparameters
        >>> hp.eval_group_size = 8
        >>> hp.update(eval_group_size=2, pass_k_values=[1, 2])
        >>> hp.get_info("top_p")["max"]
        1.0
    """

    __slots__ = ("_check", "_values")

    def __init__(self, values: dict[str, Any] | None = None,
                 check: Callable[[RolloutSpec], None] | None = None) -> None:
        unknown = [name for name in values or {} if name not in parameter_names()]
        if unknown:
            raise AttributeError(_unknown(unknown[0]))
        spec = _validated(RolloutSpec().model_dump() | dict(values or {}), None)
        object.__setattr__(self, "_check", check)
        object.__setattr__(self, "_values", {name: getattr(spec, name) for name in parameter_names()})

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            value = values[name]
            return list(value) if isinstance(value, list) else value
        raise AttributeError(_unknown(name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._values:
            raise AttributeError(_unknown(name))
        spec = self._accepted({**self._values, name: value}, name)
        self._values[name] = getattr(spec, name)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *parameter_names()]

    def update(self, **values: Any) -> RolloutHyperparameters:
        """Set several at once, checked together (so ``eval_group_size`` and ``pass_k_values`` can change in one
        step).

        Args:
            **values: New values by name (``eval_group_size=2, pass_k_values=[1, 2]``).

        Returns:
            This object, for chaining.
        """
        unknown = [name for name in values if name not in self._values]
        if unknown:
            raise AttributeError(_unknown(unknown[0]))
        spec = self._accepted({**self._values, **values}, next(iter(values), None))
        self._values.update({name: getattr(spec, name) for name in values})
        return self

    def _accepted(self, values: dict[str, Any], changed: str | None) -> RolloutSpec:
        spec = _validated(values, changed)
        if self._check is not None:
            self._check(spec)
        return spec

    def spec(self, **overrides: Any) -> RolloutSpec:
        """The ``RolloutSpec`` these values make.

        Args:
            **overrides: Fields set on top of the values (the evaluator's ``stopping_condition``).
        """
        return _validated({**self._values, **overrides}, next(iter(overrides), None))

    def to_dict(self) -> dict[str, Any]:
        """The current values, by name."""
        return {name: list(value) if isinstance(value, list) else value for name, value in self._values.items()}

    def get_info(self, name: str | None = None) -> dict[str, Any]:
        """What each parameter is and may be.

        Args:
            name: Only this parameter (``"top_p"``). Default: None, every one, by name.

        Returns:
            Per parameter: ``type``, ``default``, ``current``, ``min``/``max`` (None when unbounded),
            ``exclusive_min``/``exclusive_max`` and ``description``; ``pass_k_values`` also ``min_each`` and
            ``max_each`` (its k are bounded by the current ``eval_group_size``).
        """
        if name is not None:
            if name not in self._values:
                raise AttributeError(_unknown(name))
            return _info(name, self._values)
        return {parameter: _info(parameter, self._values) for parameter in self._values}

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self._values.items())
        return f"RolloutHyperparameters({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RolloutHyperparameters) and other.to_dict() == self.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _unknown(name: str) -> str:
    return f"no hyperparameter {name!r}; the hyperparameters are: {', '.join(parameter_names())}"


def _validated(values: dict[str, Any], changed: str | None) -> RolloutSpec:
    """``RolloutSpec`` of ``values`` in strict mode (no "4" for 4, no 4.5 for an int); the first error as an
    ``EvalInputError`` naming the parameter."""
    try:
        return RolloutSpec.model_validate(values, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if not isinstance(part, int)) or changed
        message = first["msg"].removeprefix("Value error, ")
        if changed is not None and field != changed:
            message = f"{message} (after setting {changed} = {values[changed]!r})"
        raise EvalInputError(message, field=field or None) from None


def _info(name: str, values: dict[str, Any]) -> dict[str, Any]:
    field = RolloutSpec.model_fields[name]
    bounds = _bounds(field.metadata)
    default = field.get_default(call_default_factory=True)
    info = {"type": _type_name(field.annotation), "default": default, "current": values[name], **bounds,
            "description": field.description or _docstrings().get(name) or _EXTRA_DESCRIPTIONS.get(name, "")}
    if name == "pass_k_values":
        item = _bounds(_list_item_metadata())
        info |= {"min_each": item["min"] if item["min"] is not None else 1, "max_each": values["eval_group_size"]}
    return info


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    """min, max and whether each is exclusive, from pydantic's ``annotated_types`` constraints."""
    bounds: dict[str, Any] = {"min": None, "max": None, "exclusive_min": False, "exclusive_max": False}
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["min"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds["min"], bounds["exclusive_min"] = item.gt, True
        elif isinstance(item, annotated_types.Le):
            bounds["max"] = item.le
        elif isinstance(item, annotated_types.Lt):
            bounds["max"], bounds["exclusive_max"] = item.lt, True
    return bounds


def _list_item_metadata() -> list[Any]:
    """Constraints declared on ``pass_k_values``' items, if any (its positivity is a validator: reported as 1)."""
    args = getattr(RolloutSpec.model_fields["pass_k_values"].annotation, "__args__", ())
    return list(getattr(args[0], "__metadata__", ())) if args else []


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


@cache
def _docstrings() -> dict[str, str]:
    """The attribute docstrings of ``RolloutSpec`` (the string under a field), read from its source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(RolloutSpec)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found = {}
    for node, following in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            found[node.target.id] = " ".join(following.value.value.split())
    return found
