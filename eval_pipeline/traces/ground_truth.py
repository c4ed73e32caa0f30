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

from dataclasses import dataclass, field
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
