"""Calibration against the managed service: the same batch-evaluation job sent to Bedrock AgentCore through boto3,
and its results next to ours.

``ManagedBatchEvaluation.run(request)`` starts the job with the request's service fields (a self-hosted data source
or evaluator cannot be sent and is refused, naming the field), polls ``get_batch_evaluation`` until the job ends
(injected sleep and clock; past ``timeout_s`` the job is stopped) and returns the final response.
``per_session_results`` reads the service's per-session result events back from the job's output log group as
TRACE_EVALUATIONS rows; ``calibration_table`` puts both sides' evaluator summaries side by side and, given both
sides' per-target results, their agreement on the same targets. ``managed_evaluate`` is the data plane's
synchronous ``evaluate`` for one session. The client's endpoint follows ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from eval_pipeline.data.schemas import TRACE_EVALUATIONS
from eval_pipeline.errors import EvalInputError

SERVICE = "bedrock-agentcore"
DONE = ("COMPLETED", "COMPLETED_WITH_ERRORS")
ENDED_WITHOUT_RESULTS = ("FAILED", "STOPPED", "DELETING")
SPANS_LOG_GROUP = "aws/spans"
RESULT_EVENT_NAME = "gen_ai.evaluation.result"
JOB_ID_ATTRIBUTE = "aws.bedrock_agentcore.batch_evaluation.id"
EVALUATOR_ID_ATTRIBUTE = "aws.bedrock_agentcore.evaluator.id"

CALIBRATION_COLUMNS = ["evaluator_id", "ours_average", "ours_evaluated", "ours_failed", "theirs_average",
                       "theirs_evaluated", "theirs_failed", "difference", "matched", "label_agreement", "kappa",
                       "mean_abs_value_difference"]


class ManagedEvaluationError(RuntimeError):
    """The managed job did not give results: it failed, was stopped or deleted, or its output cannot be read."""

    def __init__(self, message: str, *, job_id: str | None = None, status: str | None = None,
                 error_details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.job_id, self.status, self.error_details = job_id, status, list(error_details)


class ManagedEvaluationTimeout(ManagedEvaluationError, TimeoutError):
    """The job was still running after ``timeout_s``; it has been asked to stop."""


def managed_client(region: str | None = None, *, max_attempts: int = 5) -> Any:
    """A ``bedrock-agentcore`` client whose retries back off on throttling and transient errors (botocore's
    standard mode; ``max_attempts`` calls in all). Endpoint from ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": max_attempts})
    return boto3.session.Session().client(SERVICE, region_name=region, config=config)


# --- the request the service can take -----------------------------------------------------------------------------


def service_request(request: Mapping[str, Any], *, client: Any = None) -> dict[str, Any]:
    """``start_batch_evaluation``'s keyword arguments for one of our batch-evaluation requests, or an
    ``EvalInputError`` naming the first field the managed service cannot take (a self-hosted data source or
    evaluator, a spans log group other than ``aws/spans``, a non-string metadata value). Without a
    ``clientToken`` one is derived from the request, so sending the same request again reuses the same job."""
    from eval_pipeline.traces.request import SPANS_LOG_GROUP as OUR_SPANS_GROUP
    from eval_pipeline.traces.request import BatchEvaluationRequest, validated

    model = validated(BatchEvaluationRequest, dict(request))
    kind = model.dataSourceConfig.kind
    if kind != "cloudWatchLogs":
        raise EvalInputError(f"'{kind}' is a self-hosted data source: the managed service reads sessions from "
                             "CloudWatch Logs only (dataSourceConfig.cloudWatchLogs), so this job cannot be "
                             "calibrated against it", field=f"dataSourceConfig.{kind}")
    source = model.dataSourceConfig.cloudWatchLogs
    if source.spansLogGroupName != OUR_SPANS_GROUP:
        raise EvalInputError(f"the managed service reads spans from {OUR_SPANS_GROUP!r} only, not "
                             f"{source.spansLogGroupName!r}",
                             field="dataSourceConfig.cloudWatchLogs.spansLogGroupName")
    evaluator_pattern = _member_pattern(client, "StartBatchEvaluationRequest", "evaluators")
    for index, evaluator in enumerate(model.evaluators):
        if evaluator_pattern and re.fullmatch(evaluator_pattern, evaluator.evaluatorId) is None:
            raise EvalInputError(f"{evaluator.evaluatorId!r} is not an id the managed service knows (Builtin.* or a "
                                 "custom evaluator created there with create_evaluator, '<name>-<10 characters>')",
                                 field=f"evaluators[{index}].evaluatorId")
    sessions = model.evaluationMetadata.sessionMetadata if model.evaluationMetadata else []
    for index, session in enumerate(sessions):
        for key, value in session.metadata.items():
            if not isinstance(value, str):
                raise EvalInputError(f"the managed service takes string metadata values only, got {value!r}",
                                     field=f"evaluationMetadata.sessionMetadata[{index}].metadata.{key}")
    params = model.model_dump(mode="python", exclude_unset=True, exclude_none=True)
    cloudwatch = params["dataSourceConfig"]["cloudWatchLogs"]
    for ours_only in ("spansLogGroupName", "region"):
        cloudwatch.pop(ours_only, None)
    params.setdefault("clientToken", "calibration" + hashlib.sha256(
        json.dumps(params, sort_keys=True, default=str).encode()).hexdigest())
    return params


def _member_pattern(client: Any, shape_name: str, member: str) -> str | None:
    """The evaluator-id pattern of the installed service model (None when the model has none)."""
    import botocore.session

    model = client.meta.service_model if client is not None else \
        botocore.session.get_session().get_service_model(SERVICE)
    shape = model.shape_for(shape_name).members[member]
    while shape.type_name == "list":
        shape = shape.member
    if shape.type_name == "structure":
        shape = next(iter(shape.members.values()))
    return shape.metadata.get("pattern")


# --- the job ------------------------------------------------------------------------------------------------------


class ManagedBatchEvaluation:
    """One batch evaluation run by the managed service: start, poll until it ends, read its per-session results."""

    def __init__(self, client: Any = None, *, region: str | None = None, poll_s: float = 30.0,
                 timeout_s: float = 3 * 3600.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, max_attempts: int = 5) -> None:
        if poll_s <= 0 or timeout_s <= 0:
            raise ValueError(f"poll_s and timeout_s must be positive, got {poll_s} and {timeout_s}")
        self._client, self.region, self.max_attempts = client, region, max_attempts
        self.poll_s, self.timeout_s, self.sleep, self.clock = poll_s, timeout_s, sleep, clock

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = managed_client(self.region, max_attempts=self.max_attempts)
        return self._client

    def start(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Start the job (the same clientToken and request return the same job); the start response. Without a
        client or region, the region is the request's ``dataSourceConfig.cloudWatchLogs.region`` (else AWS's
        default chain)."""
        if self._client is None and self.region is None:
            source = (request.get("dataSourceConfig") or {}).get("cloudWatchLogs") or {}
            self.region = source.get("region") if isinstance(source, Mapping) else None
        return _plain(self.client.start_batch_evaluation(**service_request(request, client=self.client)))

    def wait(self, job_id: str) -> dict[str, Any]:
        """Poll until the job ends: the final ``get_batch_evaluation`` response when it COMPLETED (with or without
        errors); a ManagedEvaluationError with the service's ``errorDetails`` when it FAILED or was stopped or
        deleted; past ``timeout_s`` the job is stopped and ManagedEvaluationTimeout raised."""
        started = self.clock()
        while True:
            response = _plain(self.client.get_batch_evaluation(batchEvaluationId=job_id))
            status = response["status"]
            if status in DONE:
                return response
            if status in ENDED_WITHOUT_RESULTS:
                details = response.get("errorDetails") or []
                reason = f": {'; '.join(details)}" if details else ""
                raise ManagedEvaluationError(f"managed batch evaluation {job_id} ended {status}{reason}",
                                             job_id=job_id, status=status, error_details=details)
            waited = self.clock() - started
            if waited >= self.timeout_s:
                self._stop(job_id, status, waited)
            self.sleep(self.poll_s)

    def _stop(self, job_id: str, status: str, waited: float) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.stop_batch_evaluation(batchEvaluationId=job_id)
            stopped = "stopped it"
        except ClientError as exc:
            stopped = f"stopping it failed: {exc}"
        raise ManagedEvaluationTimeout(f"managed batch evaluation {job_id} still {status} after {waited:.0f} s "
                                       f"(timeout_s={self.timeout_s:g}); {stopped}", job_id=job_id, status=status)

    def run(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Start the job and wait for it: the final ``get_batch_evaluation`` response."""
        return self.wait(self.start(request)["batchEvaluationId"])

    def per_session_results(self, response: Mapping[str, Any], logs_client: Any = None) -> pd.DataFrame:
        return per_session_results(response, logs_client=logs_client)


def _plain(response: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


# --- the service's per-session results ------------------------------------------------------------------------------


def per_session_results(response: Mapping[str, Any], logs_client: Any = None) -> pd.DataFrame:
    """The job's per-session result events (``gen_ai.evaluation.result`` records in its output log group and
    stream) as TRACE_EVALUATIONS rows, sorted by evaluator, session, trace and span; events of other jobs
    sharing the group are left out."""
    output = (response.get("outputConfig") or {}).get("cloudWatchConfig") or {}
    group, job_id = output.get("logGroupName"), response.get("batchEvaluationId")
    if not group:
        raise ManagedEvaluationError(f"batch evaluation {job_id} reports no output log group "
                                     "(outputConfig.cloudWatchConfig.logGroupName)", job_id=job_id)
    if logs_client is None:
        import boto3

        arn = str(response.get("batchEvaluationArn") or "")
        region = arn.split(":")[3] if arn.count(":") >= 5 else None
        logs_client = boto3.session.Session().client("logs", region_name=region or None)
    kwargs: dict[str, Any] = {"logGroupName": group}
    if output.get("logStreamName"):
        kwargs["logStreamNames"] = [output["logStreamName"]]
    rows = []
    for page in logs_client.get_paginator("filter_log_events").paginate(**kwargs):
        for event in page.get("events", []):
            row = result_row(event.get("message", ""), where=f"{group} event {event.get('eventId')}")
            if row is not None and (row.pop("_job") in (None, job_id)):
                rows.append(row)
    frame = pd.DataFrame(rows, columns=TRACE_EVALUATIONS.names)
    return frame.sort_values(["evaluator_id", "session_id", "trace_id", "span_id"], na_position="first",
                             kind="stable").reset_index(drop=True)


def result_row(message: str, *, where: str = "result event") -> dict[str, Any] | None:
    """One result event as a TRACE_EVALUATIONS row (plus ``_job``: the batch id it names), None for a record that
    is not an evaluation result. The ``body`` (the data plane's ``evaluationResults`` item) is read first, the
    GenAI semantic-convention attributes where it has no such field."""
    try:
        record = json.loads(message)
    except ValueError as exc:
        raise ManagedEvaluationError(f"{where}: not a JSON record ({exc}): {message[:200]!r}") from None
    if not isinstance(record, dict):
        return None
    attributes = _attributes(record.get("attributes"))
    body = record.get("body") if isinstance(record.get("body"), dict) else {}
    name = attributes.get("event.name") or record.get("eventName") or record.get("name")
    evaluator = body.get("evaluatorId") or attributes.get(EVALUATOR_ID_ATTRIBUTE) \
        or attributes.get("gen_ai.evaluation.name")
    if evaluator is None or name not in (None, RESULT_EVENT_NAME):
        return None
    context = (body.get("context") or {}).get("spanContext") or {}
    service = _attributes((record.get("resource") or {}).get("attributes")).get("service.name")
    value = _first(body.get("value"), attributes.get("gen_ai.evaluation.score.value"))
    code = _first(body.get("errorCode"), attributes.get("error.type"))
    tokens = body.get("tokenUsage") or {}
    ignored = body.get("ignoredReferenceInputFields")
    row: dict[str, Any] = dict.fromkeys(TRACE_EVALUATIONS.names)
    row.update({"session_id": _first(context.get("sessionId"), attributes.get("session.id")),
                "trace_id": _first(context.get("traceId"), record.get("traceId")) or None,
                "span_id": _first(context.get("spanId"), record.get("spanId")) or None, "model": service,
                "evaluator_id": evaluator,
                "evaluator_name": _first(body.get("evaluatorName"), attributes.get("gen_ai.evaluation.name")),
                "level": attributes.get("aws.bedrock_agentcore.evaluation.level"),
                "value": None if value is None else float(value),
                "label": _first(body.get("label"), attributes.get("gen_ai.evaluation.score.label")),
                "explanation": _first(body.get("explanation"), attributes.get("gen_ai.evaluation.explanation")),
                "ignored_reference_fields": None if ignored is None else json.dumps(list(ignored)),
                "tokens_in": tokens.get("inputTokens"), "tokens_out": tokens.get("outputTokens"),
                "error_code": code, "error": _first(body.get("errorMessage"), attributes.get("error.message"), code),
                "_job": attributes.get(JOB_ID_ATTRIBUTE)})
    return row


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _attributes(value: Any) -> dict[str, Any]:
    """Attributes as a flat dict, from a JSON object or OTLP's ``[{"key", "value": {"stringValue": …}}]``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        flat = {}
        for item in value:
            if isinstance(item, dict) and "key" in item:
                wrapped = item.get("value") or {}
                flat[item["key"]] = next(iter(wrapped.values()), None) if isinstance(wrapped, dict) else wrapped
        return flat
    return {}


def managed_evaluate(evaluatorId: str, sessionSpans: Sequence[Mapping[str, Any]], *,
                     evaluationTarget: Mapping[str, Any] | None = None,
                     evaluationReferenceInputs: Sequence[Mapping[str, Any]] | None = None,
                     client: Any = None, region: str | None = None) -> list[dict[str, Any]]:
    """The data plane's synchronous ``evaluate`` of one session's spans and events (arguments in the service's
    names): its ``evaluationResults``."""
    if not sessionSpans:
        raise EvalInputError("give the session's span and event records", field="sessionSpans")
    kwargs: dict[str, Any] = {"evaluatorId": evaluatorId, "evaluationInput": {"sessionSpans": list(sessionSpans)}}
    if evaluationTarget is not None:
        kwargs["evaluationTarget"] = dict(evaluationTarget)
    if evaluationReferenceInputs is not None:
        kwargs["evaluationReferenceInputs"] = list(evaluationReferenceInputs)
    client = client if client is not None else managed_client(region)
    return list(client.evaluate(**kwargs)["evaluationResults"])


# --- side by side ----------------------------------------------------------------------------------------------------


def calibration_table(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], *,
                      ours_results: pd.DataFrame | None = None,
                      theirs_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per evaluator (sorted by id; one present on one side only has NaN on the other): our ``averageScore``,
    ``totalEvaluated`` and ``totalFailed`` next to the managed service's, and ``difference`` = ours − theirs.
    With both sides' per-target results (TRACE_EVALUATIONS-like frames), their agreement on the targets both
    scored (error rows left out; targets matched by session, and by trace and span where both sides give them):
    ``matched`` targets, ``label_agreement`` (exact label match rate) and Cohen's ``kappa`` over targets both
    labelled, and ``mean_abs_value_difference`` over targets both valued."""
    from eval_pipeline.metrics.agreement import agreement

    mine, other = _summaries(ours, "ours"), _summaries(theirs, "theirs")
    with_results = ours_results is not None and theirs_results is not None
    if (ours_results is None) != (theirs_results is None):
        raise ValueError("give ours_results and theirs_results together, or neither")
    ids = set(mine) | set(other)
    if with_results:
        ours_results, theirs_results = _scored(ours_results), _scored(theirs_results)
        ids |= set(ours_results["evaluator_id"]) | set(theirs_results["evaluator_id"])
    rows = []
    for evaluator in sorted(ids):
        a, b = mine.get(evaluator, {}), other.get(evaluator, {})
        row: dict[str, Any] = {"evaluator_id": evaluator, "ours_average": a.get("average", math.nan),
                               "ours_evaluated": a.get("evaluated"), "ours_failed": a.get("failed"),
                               "theirs_average": b.get("average", math.nan),
                               "theirs_evaluated": b.get("evaluated"), "theirs_failed": b.get("failed")}
        row["difference"] = row["ours_average"] - row["theirs_average"]
        row |= {"matched": None, "label_agreement": math.nan, "kappa": math.nan,
                "mean_abs_value_difference": math.nan}
        if with_results:
            pairs = _matched(evaluator, ours_results[ours_results["evaluator_id"] == evaluator],
                             theirs_results[theirs_results["evaluator_id"] == evaluator])
            labels = agreement(list(pairs["label_ours"]), list(pairs["label_theirs"]))
            values = pairs.dropna(subset=["value_ours", "value_theirs"])
            row |= {"matched": len(pairs), "label_agreement": labels.accuracy, "kappa": labels.kappa,
                    "mean_abs_value_difference": (float((values["value_ours"] - values["value_theirs"]).abs().mean())
                                                  if len(values) else math.nan)}
        rows.append(row)
    table = pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)
    for column in ("ours_evaluated", "ours_failed", "theirs_evaluated", "theirs_failed", "matched"):
        table[column] = table[column].astype("Int64")
    for column in ("ours_average", "theirs_average", "difference", "label_agreement", "kappa",
                   "mean_abs_value_difference"):
        table[column] = table[column].astype(float)
    return table


def _summaries(summaries: Iterable[Mapping[str, Any]], side: str) -> dict[str, dict[str, Any]]:
    """Evaluator summaries in the service's shape, by evaluator id."""
    by_id: dict[str, dict[str, Any]] = {}
    for index, summary in enumerate(summaries):
        evaluator = summary.get("evaluatorId")
        if not evaluator:
            raise EvalInputError("an evaluator summary without evaluatorId", field=f"{side}[{index}].evaluatorId")
        if evaluator in by_id:
            raise EvalInputError(f"evaluator {evaluator!r} summarized twice", field=f"{side}[{index}].evaluatorId")
        average = (summary.get("statistics") or {}).get("averageScore")
        by_id[evaluator] = {"average": math.nan if average is None else float(average),
                            "evaluated": summary.get("totalEvaluated"), "failed": summary.get("totalFailed")}
    return by_id


TARGET_KEYS = ("session_id", "trace_id", "span_id")


def _scored(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with a value or a label and no error, with the columns matching needs."""
    frame = frame.copy()
    for column in (*TARGET_KEYS, "evaluator_id", "value", "label", "error_code", "error"):
        if column not in frame.columns:
            frame[column] = None
    frame = frame.astype({"trace_id": object, "span_id": object}).where(frame.notna(), None)
    ok = frame["error_code"].isna() & frame["error"].isna() & (frame["value"].notna() | frame["label"].notna())
    return frame[ok]


def _matched(evaluator: str, ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """Our and their results joined on the target: the session, and the trace and span where every row of both
    sides names one. A target scored twice on one side cannot be matched: an error."""
    keys = ["session_id"] + [key for key in TARGET_KEYS[1:]
                             if len(ours) and len(theirs) and ours[key].notna().all() and theirs[key].notna().all()]
    for side, frame in (("ours", ours), ("theirs", theirs)):
        counts = frame.groupby(keys, dropna=False).size()
        if (counts > 1).any():
            target, count = counts[counts > 1].index[0], int(counts[counts > 1].iloc[0])
            raise ValueError(f"{side}: evaluator {evaluator!r} has {count} results for target {target!r}: "
                             f"cannot match targets by {keys}")
    columns = [*keys, "value", "label"]
    pairs = ours[columns].merge(theirs[columns], on=keys, suffixes=("_ours", "_theirs"))
    pairs["value_ours"] = pd.to_numeric(pairs["value_ours"], errors="coerce")
    pairs["value_theirs"] = pd.to_numeric(pairs["value_theirs"], errors="coerce")
    return pairs
