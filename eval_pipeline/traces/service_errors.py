"""The batch-evaluation service's error types, as the self-hosted API raises them (each an ``EvalInputError``, so
they name the file, line and field), and the one place bad input becomes a ``ValidationException``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eval_pipeline.errors import EvalInputError


class ValidationException(EvalInputError):
    """The request breaks the service's constraints (the service's ``ValidationException``)."""


class ConflictException(EvalInputError):
    """The request conflicts with a resource's state: a name in use, a reused ``clientToken`` with another request,
    stopping a finished job (the service's ``ConflictException``)."""


class ResourceNotFoundException(EvalInputError):
    """No job or evaluator with that id (the service's ``ResourceNotFoundException``)."""


@contextmanager
def as_validation_exception(field: str | None = None) -> Iterator[None]:
    """An ``EvalInputError`` raised inside re-raised as a ``ValidationException`` with its file, line and field
    (``field`` when it names none)."""
    try:
        yield
    except EvalInputError as exc:
        raise ValidationException(exc.reason, file=exc.file, line=exc.line, field=exc.field or field) from None
