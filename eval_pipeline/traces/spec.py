"""What a ``task: traces`` suite declares under ``traces:``: a batch evaluation in AgentCore's names.

```yaml
traces:
  evaluators: [Builtin.TrajectoryInOrderMatch, Builtin.GoalSuccessRate]     # at most 10; ids or custom evaluators
  dataSourceConfig: {files: {paths: [examples/data/traces/travel_agent_spans.jsonl]}}   # or cloudWatchLogs, rollouts
  evaluationMetadata: examples/data/traces/travel_agent_ground_truth.json   # or the sessionMetadata inline
  outputConfig: {cloudWatchConfig: {logGroupName: /eval/results}}          # optional: result events
  sessionTimeoutMinutes: 15                                                 # the log-group sensor's completion rule
```

A custom evaluator is written in place as ``create_evaluator``'s arguments (``evaluatorName``, ``level``,
``evaluatorConfig``); its ``evaluatorName`` is its id in the results.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from eval_pipeline.traces.evaluators.base import MAX_EVALUATORS
from eval_pipeline.traces.request import (
    CustomEvaluatorShape,
    DataSourceConfig,
    EvaluationMetadata,
    OutputConfig,
    ServiceShape,
)

MAX_SESSION_TIMEOUT_MINUTES = 1440


class TracesSpec(ServiceShape):
    evaluators: list[CustomEvaluatorShape | str] = Field(min_length=1, max_length=MAX_EVALUATORS)
    dataSourceConfig: DataSourceConfig
    evaluationMetadata: EvaluationMetadata | str | None = None
    """The ground truth per session: the ``evaluationMetadata`` object, or a JSON file holding it."""
    outputConfig: OutputConfig | None = None
    sessionTimeoutMinutes: int = Field(default=15, ge=1, le=MAX_SESSION_TIMEOUT_MINUTES)
    """A session is complete (the sensor evaluates it) after this long without a new span."""

    @model_validator(mode="after")
    def _unique_ids(self) -> TracesSpec:
        ids = self.evaluator_ids()
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"evaluators repeat {', '.join(map(repr, repeated))}")
        return self

    def evaluator_ids(self) -> list[str]:
        return [e if isinstance(e, str) else e.evaluatorName for e in self.evaluators]

    def custom(self) -> dict[str, CustomEvaluatorShape]:
        return {e.evaluatorName: e for e in self.evaluators if not isinstance(e, str)}

    def request(self, name: str) -> dict[str, Any]:
        """The job as ``start_batch_evaluation``'s arguments (custom evaluators by id)."""
        request: dict[str, Any] = {
            "batchEvaluationName": name, "evaluators": [{"evaluatorId": i} for i in self.evaluator_ids()],
            "dataSourceConfig": self.dataSourceConfig.model_dump(exclude_none=True, mode="json")}
        if isinstance(self.evaluationMetadata, EvaluationMetadata):
            request["evaluationMetadata"] = self.evaluationMetadata.model_dump(exclude_none=True, mode="json")
        if self.outputConfig is not None:
            request["outputConfig"] = self.outputConfig.model_dump(exclude_none=True, mode="json")
        return request
