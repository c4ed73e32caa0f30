"""Ground truth per session, in the shape of ``evaluationMetadata.sessionMetadata`` (AgentCore's batch evaluation):

```json
{"sessionMetadata": [{"sessionId": "s-1", "testScenarioId": "book-flight-01", "metadata": {"split": "dev"},
  "groundTruth": {"inline": {
      "assertions": [{"text": "Agent books exactly one flight"}],
      "expectedTrajectory": {"toolNames": ["search_flights", "book_flight"]},
      "turns": [{"input": {"prompt": "Book me..."}, "expectedResponse": {"text": "Booked ..."}}]}}}]}
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REFERENCE_FIELDS: tuple[str, ...] = ("assertions", "expectedTrajectory", "expectedResponse")
"""The ground-truth fields an evaluator may read; each result lists those given but not read
(``ignoredReferenceInputFields``). A session's ``turns`` give ``expectedResponse`` per trace."""

MAX_SESSIONS = 500
MAX_ASSERTIONS = 100


@dataclass(frozen=True)
class ExpectedTurn:
    prompt: str | None
    expected_response: str | None


@dataclass(frozen=True)
class GroundTruth:
    """What a session should have done: statements about it, the tools it should have called, and per turn the
    reply it should have given."""

    assertions: tuple[str, ...] = ()
    expected_tool_names: tuple[str, ...] | None = None
    """None: no ``expectedTrajectory``; an empty tuple: the session should call no tool."""
    turns: tuple[ExpectedTurn, ...] = ()

    def given(self) -> tuple[str, ...]:
        """The REFERENCE_FIELDS this ground truth gives."""
        present = {"assertions": bool(self.assertions), "expectedTrajectory": self.expected_tool_names is not None,
                   "expectedResponse": any(t.expected_response for t in self.turns)}
        return tuple(name for name in REFERENCE_FIELDS if present[name])


@dataclass(frozen=True)
class SessionMetadata:
    session_id: str
    test_scenario_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    ground_truth: GroundTruth = GroundTruth()


def load_evaluation_metadata(value: str | dict[str, Any] | None, *, root: Path | None = None,
                             file: str | None = None) -> dict[str, SessionMetadata]:
    """Ground truth by session id, from ``evaluationMetadata``: None (none), a dict in its shape, or the path of a
    JSON file holding it (relative paths from ``root``). Validated with ``traces.request.validated``: a bad field is
    an ``EvalInputError`` naming the file and the field (``sessionMetadata[3].groundTruth.inline.assertions``);
    a file that is not JSON names the file and the line."""
    from eval_pipeline.errors import EvalInputError
    from eval_pipeline.traces.request import EvaluationMetadata, validated

    if value is None:
        return {}
    data: Any = value
    if isinstance(value, str | Path):
        path = Path(value)
        if not path.is_absolute() and root is not None:
            path = root / path
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EvalInputError(f"cannot read the evaluation metadata: {exc.strerror or exc}", file=file) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=file,
                                 line=exc.lineno) from None
    elif not isinstance(value, dict):
        raise EvalInputError(f"evaluationMetadata must be an object or a file path, not {type(value).__name__}",
                             file=file, field="evaluationMetadata")
    metadata: EvaluationMetadata = validated(EvaluationMetadata, data, file=file)
    return metadata.by_session()
