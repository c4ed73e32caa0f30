"""Inspect AI logs (``.eval`` or ``.json``) as recorded responses: each sample's final output, keyed by our item id.

A sample's ``id`` is the item's ``sample_id`` (an integer id is read as its text) and its ``epoch`` (1, 2, …) the
item's ``sample_index`` + 1. A sample that errored keeps its error: the item gets an error row, never a made-up answer.
Inspect is an optional extra: ``inspect_api()`` imports it on use, with an error that names the extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eval_pipeline.errors import EvalInputError

INSTALL_HINT = "pip install 'eval-pipeline[inspect]'"


def inspect_api() -> Any:
    """The ``inspect_ai.log`` module; ``ModuleNotFoundError`` naming the extra when Inspect is not installed."""
    try:
        import inspect_ai.log as api
    except ModuleNotFoundError as missing:
        if missing.name is None or not missing.name.startswith("inspect_ai"):
            raise
        raise ModuleNotFoundError(f"Inspect AI logs need the optional 'inspect' extra: {INSTALL_HINT}",
                                  name="inspect_ai") from missing
    return api


@dataclass
class LoggedResponses:
    """A log's answers by (sample id, sample index), and the errors of the samples that failed."""

    responses: dict[tuple[str, int], str] = field(default_factory=dict)
    errors: dict[tuple[str, int], str] = field(default_factory=dict)
    model: str | None = None

    def __contains__(self, key: object) -> bool:
        return key in self.responses or key in self.errors


def read_logged_responses(path: str) -> LoggedResponses:
    """The samples of the Inspect log at ``path`` (a local path or a URI Inspect reads): EvalInputError naming the file
    when it is not an Inspect log, when two samples share an id and epoch (``1`` and ``"1"`` clash), or when Inspect
    is not installed."""
    try:
        api = inspect_api()
    except ModuleNotFoundError as missing:
        if missing.name != "inspect_ai":
            raise
        raise EvalInputError(f"reading an Inspect log needs Inspect AI: {INSTALL_HINT}", file=path,
                             field="responses") from missing
    try:
        log = api.read_eval_log(path)
    except (ValueError, KeyError, OSError) as problem:  # pydantic's ValidationError is a ValueError; zip errors OSError
        first = str(problem).splitlines()[0] if str(problem) else repr(problem)
        raise EvalInputError(f"not a readable Inspect log: {first}", file=path, field="responses") from problem
    found = LoggedResponses(model=log.eval.model)
    for position, sample in enumerate(log.samples or []):
        key = (str(sample.id), int(sample.epoch) - 1)
        if key in found:
            raise EvalInputError(f"sample {sample.id!r} epoch {sample.epoch} appears twice (ids are matched as text, "
                                 "so 1 and '1' are the same item)", file=path, field=f"samples[{position}].id")
        if sample.error is not None:
            found.errors[key] = sample.error.message
        else:
            found.responses[key] = sample.output.completion
    return found
