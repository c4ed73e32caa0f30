"""The batch-evaluation request in AgentCore's shape (``start_batch_evaluation``), validated with errors that name
the field: the API takes it as keyword arguments, a ``task: traces`` suite as its ``traces:`` block.

The service's names and limits are kept (at most 10 evaluators, 500 sessions, 1–100 assertions per session,
a time range that ends after it starts). Self-hosting adds two data sources next to ``cloudWatchLogs``: ``files``
(span JSONL, OTLP JSON or OTLP protobuf exports) and ``rollouts`` (a ``rollouts`` table of our own agent runs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.evaluators.base import MAX_EVALUATORS, Level
from eval_pipeline.traces.ground_truth import (
    MAX_ASSERTIONS,
    MAX_SESSIONS,
    ExpectedTurn,
    GroundTruth,
    SessionMetadata,
)

SPANS_LOG_GROUP = "aws/spans"
"""Where AgentCore observability writes spans (CloudWatch Transaction Search)."""


class ServiceShape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)


class TimeRange(ServiceShape):
    startTime: datetime | None = None
    endTime: datetime | None = None

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> TimeRange:
        if self.startTime is not None and self.endTime is not None and self.endTime < self.startTime:
            raise ValueError(f"endTime {self.endTime.isoformat()} is before startTime {self.startTime.isoformat()}")
        return self


class SessionTraceIds(ServiceShape):
    sessionId: str = Field(min_length=1)
    traceIds: list[str] = Field(min_length=1, max_length=100)


class FilterConfig(ServiceShape):
    """Which sessions of the source to evaluate: by id, by time (a span counts when it starts in the range), by
    session and trace ids."""

    sessionIds: list[str] = Field(default_factory=list, max_length=MAX_SESSIONS)
    timeRange: TimeRange | None = None
    sessionTraceIds: list[SessionTraceIds] = Field(default_factory=list, max_length=MAX_SESSIONS)


class CloudWatchLogsSource(ServiceShape):
    """Spans in ``aws/spans`` (``spansLogGroupName``) and their event records in the agent's log groups."""

    serviceNames: list[str] = Field(min_length=1)
    logGroupNames: list[str] = Field(default_factory=list, max_length=10)
    logGroupNamePrefixes: list[str] = Field(default_factory=list, max_length=5)
    filterConfig: FilterConfig | None = None
    spansLogGroupName: str = SPANS_LOG_GROUP
    region: str | None = None


class FilesSource(ServiceShape):
    """Span files: JSONL (one span or event record per line, the CloudWatch/ADOT shape), OTLP JSON exports
    (``resourceSpans``/``resourceLogs``), OTLP protobuf (``.pb``); each path a file, a folder or a glob, relative
    paths from the project root."""

    paths: list[str] = Field(min_length=1)
    serviceNames: list[str] = Field(default_factory=list)
    filterConfig: FilterConfig | None = None


class RolloutsSource(ServiceShape):
    """A ``rollouts`` table (Parquet) written by a ``task: rollout`` suite: each rollout is a session."""

    path: str
    filterConfig: FilterConfig | None = None


class DataSourceConfig(ServiceShape):
    """Exactly one source."""

    cloudWatchLogs: CloudWatchLogsSource | None = None
    files: FilesSource | None = None
    rollouts: RolloutsSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSourceConfig:
        given = [name for name in ("cloudWatchLogs", "files", "rollouts") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of cloudWatchLogs, files, rollouts (got {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in ("cloudWatchLogs", "files", "rollouts") if getattr(self, name) is not None)

    @property
    def source(self) -> CloudWatchLogsSource | FilesSource | RolloutsSource:
        return getattr(self, self.kind)

    @property
    def filter(self) -> FilterConfig:
        return self.source.filterConfig or FilterConfig()


class _Text(ServiceShape):
    text: str = Field(min_length=1, max_length=100_000)


class _ExpectedTrajectory(ServiceShape):
    toolNames: list[str] = Field(default_factory=list, max_length=1000)


class _Prompt(ServiceShape):
    prompt: str = Field(default="", max_length=4000)


class _GroundTruthTurn(ServiceShape):
    input: _Prompt | None = None
    expectedResponse: _Text | None = None


class _Inline(ServiceShape):
    assertions: list[_Text] | None = Field(default=None, min_length=1, max_length=MAX_ASSERTIONS)
    expectedTrajectory: _ExpectedTrajectory | None = None
    turns: list[_GroundTruthTurn] | None = Field(default=None, min_length=1)


class _GroundTruthSource(ServiceShape):
    inline: _Inline


class SessionMetadataShape(ServiceShape):
    sessionId: str = Field(min_length=1)
    testScenarioId: str | None = None
    groundTruth: _GroundTruthSource | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_metadata(self) -> SessionMetadata:
        inline = self.groundTruth.inline if self.groundTruth is not None else _Inline()
        truth = GroundTruth(
            assertions=tuple(a.text for a in inline.assertions or ()),
            expected_tool_names=(tuple(inline.expectedTrajectory.toolNames)
                                 if inline.expectedTrajectory is not None else None),
            turns=tuple(ExpectedTurn(prompt=t.input.prompt if t.input else None,
                                     expected_response=t.expectedResponse.text if t.expectedResponse else None)
                        for t in inline.turns or ()))
        return SessionMetadata(self.sessionId, self.testScenarioId, dict(self.metadata), truth)


class EvaluationMetadata(ServiceShape):
    sessionMetadata: list[SessionMetadataShape] = Field(default_factory=list, max_length=MAX_SESSIONS)

    @model_validator(mode="after")
    def _unique_sessions(self) -> EvaluationMetadata:
        ids = [s.sessionId for s in self.sessionMetadata]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"sessionMetadata repeats sessionId {', '.join(map(repr, repeated))}")
        return self

    def by_session(self) -> dict[str, SessionMetadata]:
        return {s.sessionId: s.to_metadata() for s in self.sessionMetadata}


class EvaluatorRef(ServiceShape):
    evaluatorId: str = Field(min_length=1, max_length=111)


class CloudWatchOutput(ServiceShape):
    logGroupName: str | None = None
    logStreamName: str | None = None
    metricsNamespace: str | None = None
    resultDestination: Literal["DEDICATED_LOG_GROUP", "SOURCE_LOG_GROUP"] | None = None


class OutputConfig(ServiceShape):
    cloudWatchConfig: CloudWatchOutput | None = None


class CustomEvaluatorShape(ServiceShape):
    """``create_evaluator``'s request: a name, a level and its configuration (``llmAsAJudge`` or ``codeBased``).
    Self-hosting adds ``codeBased.python`` (``module:function``) next to ``codeBased.lambdaConfig``."""

    evaluatorName: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    level: Level
    evaluatorConfig: dict[str, Any]
    description: str | None = Field(default=None, max_length=200)


class BatchEvaluationRequest(ServiceShape):
    """``start_batch_evaluation``'s arguments."""

    batchEvaluationName: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    evaluators: list[EvaluatorRef] = Field(min_length=1, max_length=MAX_EVALUATORS)
    dataSourceConfig: DataSourceConfig
    clientToken: str | None = Field(default=None, min_length=33, max_length=256)
    evaluationMetadata: EvaluationMetadata | None = None
    description: str | None = Field(default=None, max_length=200)
    outputConfig: OutputConfig | None = None

    @model_validator(mode="after")
    def _unique_evaluators(self) -> BatchEvaluationRequest:
        ids = [e.evaluatorId for e in self.evaluators]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"evaluators repeat {', '.join(map(repr, repeated))}")
        return self


def validated(shape: type[BaseModel], data: Any, *, file: str | None = None, prefix: str = "") -> Any:
    """``data`` as ``shape``, or an ``EvalInputError`` naming the first bad field (``evaluators``,
    ``evaluationMetadata.sessionMetadata[3].groundTruth.inline.assertions``) and what is wrong with it."""
    try:
        return shape.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = field_name(error["loc"], prefix)
        raise EvalInputError(error["msg"].removeprefix("Value error, "), file=file, field=where or None) from None


def field_name(loc: tuple[Any, ...], prefix: str = "") -> str:
    """A pydantic location as a dotted field path with list indexes: ``a.b[3].c``."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
