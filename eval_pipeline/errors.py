"""Errors about user input that say exactly where the problem is."""

from __future__ import annotations


class EvalInputError(ValueError):
    """Bad input, located by file, line (1-based) and field where they are known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = ":".join(str(part) for part in (file, line) if part is not None)
        prefix = f"{where}: " if where else ""
        field_part = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{field_part}{message}")


def input_error_in(error: object | None) -> str | None:
    """The message of the first EvalInputError in an error chain, else None.

    ``error`` is a recorded error with ``cls_name``, ``message``, ``cause`` and ``context`` (Dagster's
    ``SerializableErrorInfo`` of a failed step), so a run layer can tell bad input (exit 2) from a failure."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "cls_name", None) in _input_error_names():
            message = str(getattr(error, "message", "")).strip()
            return message.split(": ", 1)[1] if message.startswith("eval_pipeline.") else message
        error = getattr(error, "cause", None) or getattr(error, "context", None)
    return None


def _input_error_names() -> set[str]:
    """EvalInputError and every subclass defined so far."""
    names, pending = set(), [EvalInputError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending += cls.__subclasses__()
    return names
