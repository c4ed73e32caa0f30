"""A fake of Bedrock AgentCore's evaluation data plane on 127.0.0.1, for the real boto3 ``bedrock-agentcore`` client.

Routes and member locations come from the installed botocore's service model (rest-json):

* StartBatchEvaluation ``POST /evaluations/batch-evaluate`` (202), GetBatchEvaluation ``GET …/{id}``,
  ListBatchEvaluations ``GET /evaluations/batch-evaluate?maxResults=&nextToken=``, StopBatchEvaluation
  ``POST …/{id}/stop`` (202), DeleteBatchEvaluation ``DELETE …/{id}`` (202), Evaluate
  ``POST /evaluations/evaluate/{evaluatorId}``.

Every request is checked against the operation's input shape (``botocore.validate`` for required members, types,
minimums and unions, plus the model's maximums, patterns and enums, which botocore leaves to the server); a bad one
is answered ``400 ValidationException`` in the rest-json error shape (``x-amzn-ErrorType`` + ``{"message"}``).
Every answer is checked against the output shape before it is sent (a fake that drifts from the model fails).

A job is scripted per test with a ``JobScript`` (``server.script``, or ``server.scripts[name]`` for one job name):
how many polls answer PENDING and IN_PROGRESS, the terminal status (COMPLETED, COMPLETED_WITH_ERRORS, FAILED),
``errorDetails``, the per-session results (``ScriptedResult``) and, if given, the evaluator summaries (else computed
from the results). ``clientToken`` is idempotent as the service's: the same token and request return the same job
and start nothing; the same token with another request is a ConflictException, as is a second job of one name.
With ``server.logs_endpoint`` set (moto), a job that completes writes one result event per ``ScriptedResult`` to
its output log group (``outputConfig.cloudWatchConfig``, else the service's default group), as the service does.
Faults: ``server.service.fail_next("throttle", …)``; records: ``server.requests``, counts: ``server.calls``.
Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE = server.url``.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.service_base import FakeServer, JsonHandler, ScriptedService, serve_cli

REGION = "us-east-1"
ACCOUNT = "123456789012"
RESULTS_LOG_GROUP_PREFIX = "/aws/bedrock-agentcore/evaluations/batch-evaluations/results"
"""Where the service writes a batch job's per-session results when the request names no log group."""
RESULT_EVENT_NAME = "gen_ai.evaluation.result"
TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED"}
OPERATIONS = ("StartBatchEvaluation", "GetBatchEvaluation", "ListBatchEvaluations", "StopBatchEvaluation",
              "DeleteBatchEvaluation", "Evaluate")


@dataclass(frozen=True)
class ScriptedResult:
    """One evaluator's result for one target, as the service writes it to the output log group."""

    session_id: str
    evaluator_id: str
    value: float | None = None
    label: str | None = None
    explanation: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class JobScript:
    """How a job goes: ``pending_polls`` Get calls answer PENDING, then ``running_polls`` IN_PROGRESS, then
    ``final_status`` (with ``error_details`` when FAILED)."""

    pending_polls: int = 1
    running_polls: int = 1
    final_status: str = "COMPLETED"
    error_details: list[str] = field(default_factory=list)
    results: list[ScriptedResult] = field(default_factory=list)
    summaries: list[dict[str, Any]] | None = None
    ignored_sessions: int = 0


EvaluateFn = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def default_evaluate(evaluator_id: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per target trace or span (else per trace in the spans): value 1.0, label "Yes"."""
    spans = params["evaluationInput"].get("sessionSpans") or []
    session = next((s.get("attributes", {}).get("session.id") for s in spans if isinstance(s, dict)
                    and s.get("attributes", {}).get("session.id")), "session")
    target = params.get("evaluationTarget") or {}
    if target.get("spanIds"):
        contexts = [{"sessionId": session, "spanId": span_id} for span_id in target["spanIds"]]
    else:
        traces = target.get("traceIds") or list(dict.fromkeys(s["traceId"] for s in spans
                                                             if isinstance(s, dict) and s.get("traceId")))
        contexts = [{"sessionId": session, "traceId": trace_id} for trace_id in traces] or [{"sessionId": session}]
    return [{"value": 1.0, "label": "Yes", "explanation": "scripted", "context": {"spanContext": context}}
            for context in contexts]


class FakeAgentCoreEvaluations(FakeServer):
    """The server. ``jobs`` by id; ``requests`` (operation, params) in arrival order; ``calls`` per operation."""

    def __init__(self, port: int = 0, *, logs_endpoint: str | None = None, region: str = REGION) -> None:
        super().__init__(_Handler, port)
        import botocore.session

        self.model = botocore.session.get_session().get_service_model("bedrock-agentcore")
        self.service = ScriptedService()
        self.region = region
        self.logs_endpoint = logs_endpoint
        self.script = JobScript()
        self.scripts: dict[str, JobScript] = {}
        self.evaluate_fn: EvaluateFn = default_evaluate
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # clientToken -> (request digest, job id)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.calls: collections.Counter[str] = collections.Counter()
        self.events_written: dict[str, int] = {}
        self.lock = threading.Lock()
        self._serial = 0

    @property
    def started(self) -> int:
        """How many jobs were created (replays of a clientToken create none)."""
        return self._serial

    def new_job_id(self, name: str) -> str:
        self._serial += 1
        return f"{name}-{hashlib.sha256(f'{name}{self._serial}'.encode()).hexdigest()[:10]}"

    def arn(self, job_id: str) -> str:
        return f"arn:aws:bedrock-agentcore:{self.region}:{ACCOUNT}:batch-evaluation/{job_id}"


# --- the service model: routes and validation --------------------------------------------------------------------


def route(model: Any, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The operation whose requestUri matches, and its URI labels (percent-decoded)."""
    segments = path.split("/")
    for name in OPERATIONS:
        http = model.operation_model(name).http
        if http["method"] != method:
            continue
        pattern = http["requestUri"].split("?")[0].split("/")
        if len(pattern) != len(segments):
            continue
        labels: dict[str, str] = {}
        for want, got in zip(pattern, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                labels[want.strip("{}+")] = urllib.parse.unquote(got)
            elif want != got:
                break
        else:
            return name, labels
    return None


def request_params(operation: Any, labels: Mapping[str, str], query: Mapping[str, str],
                   body: bytes) -> dict[str, Any]:
    """The operation's input members from where the model puts them: URI labels, query string, JSON body."""
    shape = operation.input_shape
    params: dict[str, Any] = {}
    if body.strip():
        decoded = json.loads(body)
        if not isinstance(decoded, dict):
            raise ValueError("the request body is not a JSON object")
        params.update(decoded)
    for name, member in shape.members.items():
        location, wire = member.serialization.get("location"), member.serialization.get("name", name)
        if location == "uri" and wire in labels:
            params[name] = labels[wire]
        elif location == "querystring" and wire in query:
            value: Any = query[wire]
            params[name] = int(value) if member.type_name in ("integer", "long") else value
    return params


def violations(params: Any, shape: Any) -> list[str]:
    """What is wrong with ``params`` for ``shape``: botocore's checks, then maximums, patterns and enums."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(params, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    return problems + _constraints(params, shape, "")


def _constraints(value: Any, shape: Any, where: str) -> list[str]:
    meta, kind = shape.metadata, shape.type_name
    if value is None or (kind == "structure" and getattr(shape, "is_document_type", False)):
        return []
    problems: list[str] = []
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                problems += _constraints(value[name], member, f"{where}.{name}" if where else name)
    elif kind == "list" and isinstance(value, list | tuple):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} items, at most {meta['max']}")
        for index, item in enumerate(value):
            problems += _constraints(item, shape.member, f"{where}[{index}]")
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} entries, at most {meta['max']}")
        for key, item in value.items():
            problems += _constraints(item, shape.value, f"{where}.{key}")
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: length {len(value)}, at most {meta['max']}")
        if "pattern" in meta and re.fullmatch(meta["pattern"], value) is None:
            problems.append(f"{where}: {value!r} does not match {meta['pattern']}")
        if "enum" in meta and value not in meta["enum"]:
            problems.append(f"{where}: {value!r} is not one of {meta['enum']}")
    elif kind in ("integer", "long", "double", "float") and isinstance(value, int | float) and "max" in meta \
            and value > meta["max"]:
        problems.append(f"{where}: {value} is above {meta['max']}")
    return problems


class ServiceError(Exception):
    """An error answer: HTTP status, the modelled error code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(params: Mapping[str, Any]) -> str:
    """What makes two start requests the same request (everything but the token)."""
    return hashlib.sha256(json.dumps({k: v for k, v in params.items() if k != "clientToken"},
                                     sort_keys=True, default=str).encode()).hexdigest()


# --- the operations -----------------------------------------------------------------------------------------------


class _Operations:
    def __init__(self, fake: FakeAgentCoreEvaluations) -> None:
        self.fake = fake

    def StartBatchEvaluation(self, params: dict[str, Any]) -> dict[str, Any]:
        fake, token, name = self.fake, params.get("clientToken"), params["batchEvaluationName"]
        digest = _digest(params)
        if token is not None and token in fake.tokens:
            seen_digest, job_id = fake.tokens[token]
            if seen_digest != digest:
                raise ServiceError(409, "ConflictException", f"clientToken {token} was used by a different "
                                   f"StartBatchEvaluation request (batch evaluation {job_id})")
            return self._start_view(fake.jobs[job_id])
        if any(job["batchEvaluationName"] == name for job in fake.jobs.values()):
            raise ServiceError(409, "ConflictException", f"a batch evaluation named {name} already exists")
        job_id = fake.new_job_id(name)
        output = params.get("outputConfig") or {}
        cloudwatch = dict(output.get("cloudWatchConfig") or {})
        cloudwatch.setdefault("logGroupName", f"{RESULTS_LOG_GROUP_PREFIX}/{job_id}")
        cloudwatch.setdefault("logStreamName", job_id)
        job = {"batchEvaluationId": job_id, "batchEvaluationArn": fake.arn(job_id), "batchEvaluationName": name,
               "status": "PENDING", "createdAt": _now(), "updatedAt": _now(),
               "evaluators": params.get("evaluators", []), "dataSourceConfig": params["dataSourceConfig"],
               "outputConfig": {"cloudWatchConfig": cloudwatch},
               "_script": fake.scripts.get(name, fake.script), "_polls": 0, "_params": params}
        if "description" in params:
            job["description"] = params["description"]
        fake.jobs[job_id] = job
        if token is not None:
            fake.tokens[token] = (digest, job_id)
        return self._start_view(job)

    @staticmethod
    def _start_view(job: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("batchEvaluationId", "batchEvaluationArn", "batchEvaluationName", "evaluators", "status",
                "createdAt", "outputConfig", "description")
        return {key: job[key] for key in keys if key in job}

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.fake.jobs.get(job_id)
        if job is None:
            raise ServiceError(404, "ResourceNotFoundException", f"no batch evaluation {job_id}")
        return job

    def GetBatchEvaluation(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["batchEvaluationId"])
        self._advance(job)
        return self._full_view(job)

    def _advance(self, job: dict[str, Any]) -> None:
        """One poll moves the job along its script."""
        script: JobScript = job["_script"]
        if job["status"] == "STOPPING":
            job["status"], job["updatedAt"] = "STOPPED", _now()
            return
        if job["status"] in TERMINAL:
            return
        job["_polls"] += 1
        polls = job["_polls"]
        status = ("PENDING" if polls <= script.pending_polls
                  else "IN_PROGRESS" if polls <= script.pending_polls + script.running_polls
                  else script.final_status)
        if status != job["status"]:
            job["status"], job["updatedAt"] = status, _now()
            if status in ("COMPLETED", "COMPLETED_WITH_ERRORS"):
                self._write_results(job)

    def _full_view(self, job: dict[str, Any]) -> dict[str, Any]:
        view = {key: value for key, value in job.items() if not key.startswith("_")}
        script: JobScript = job["_script"]
        if job["status"] == "FAILED":
            view["errorDetails"] = list(script.error_details)[:1] or ["the batch evaluation failed"]
        elif job["status"] in ("IN_PROGRESS", "COMPLETED", "COMPLETED_WITH_ERRORS", "STOPPED"):
            view["evaluationResults"] = self._results(job)
        return view

    def _results(self, job: Mapping[str, Any]) -> dict[str, Any]:
        script: JobScript = job["_script"]
        sessions = list(dict.fromkeys(result.session_id for result in script.results))
        failed = {result.session_id for result in script.results if result.error_code}
        if job["status"] == "IN_PROGRESS":
            return {"numberOfSessionsCompleted": 0, "numberOfSessionsInProgress": len(sessions),
                    "numberOfSessionsFailed": 0, "totalNumberOfSessions": len(sessions),
                    "numberOfSessionsIgnored": script.ignored_sessions}
        summaries = script.summaries if script.summaries is not None else self._summaries(job)
        return {"numberOfSessionsCompleted": len(sessions) - len(failed), "numberOfSessionsInProgress": 0,
                "numberOfSessionsFailed": len(failed), "totalNumberOfSessions": len(sessions),
                "numberOfSessionsIgnored": script.ignored_sessions, "evaluatorSummaries": summaries}

    @staticmethod
    def _summaries(job: Mapping[str, Any]) -> list[dict[str, Any]]:
        results: list[ScriptedResult] = job["_script"].results
        summaries = []
        for evaluator in job["evaluators"]:
            mine = [r for r in results if r.evaluator_id == evaluator["evaluatorId"]]
            values = [r.value for r in mine if r.error_code is None and r.value is not None]
            statistics = {"averageScore": sum(values) / len(values)} if values else {}
            summaries.append({"evaluatorId": evaluator["evaluatorId"], "statistics": statistics,
                              "totalEvaluated": sum(r.error_code is None for r in mine),
                              "totalFailed": sum(r.error_code is not None for r in mine)})
        return summaries

    def _write_results(self, job: dict[str, Any]) -> None:
        """The per-session result events, one log event each, in the job's output log group."""
        fake = self.fake
        if fake.logs_endpoint is None:
            return
        import boto3

        output = job["outputConfig"]["cloudWatchConfig"]
        group, stream = output["logGroupName"], output["logStreamName"]
        logs = boto3.client("logs", region_name=fake.region, endpoint_url=fake.logs_endpoint)
        for create, kwargs in ((logs.create_log_group, {"logGroupName": group}),
                               (logs.create_log_stream, {"logGroupName": group, "logStreamName": stream})):
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                create(**kwargs)
        service = (job["dataSourceConfig"].get("cloudWatchLogs") or {}).get("serviceNames", [None])[0]
        now_ms = int(time.time() * 1000)
        events = [{"timestamp": now_ms, "message": json.dumps(result_event(result, job, service))}
                  for result in job["_script"].results]
        for start in range(0, len(events), 1000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start:start + 1000])
        fake.events_written[job["batchEvaluationId"]] = len(events)

    def ListBatchEvaluations(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = list(self.fake.jobs.values())
        start = int(params.get("nextToken") or 0)
        size = params.get("maxResults", 10)
        keys = ("batchEvaluationId", "batchEvaluationArn", "batchEvaluationName", "status", "createdAt",
                "description", "evaluators", "updatedAt")
        page = [{key: job[key] for key in keys if key in job} for job in jobs[start:start + size]]
        reply: dict[str, Any] = {"batchEvaluations": page}
        if start + size < len(jobs):
            reply["nextToken"] = str(start + size)
        return reply

    def StopBatchEvaluation(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["batchEvaluationId"])
        if job["status"] in TERMINAL:
            raise ServiceError(409, "ConflictException",
                               f"batch evaluation {job['batchEvaluationId']} is {job['status']}: nothing to stop")
        job["status"], job["updatedAt"] = "STOPPING", _now()
        return {"batchEvaluationId": job["batchEvaluationId"], "batchEvaluationArn": job["batchEvaluationArn"],
                "status": job["status"]}

    def DeleteBatchEvaluation(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["batchEvaluationId"])
        if job["status"] not in TERMINAL:
            raise ServiceError(409, "ConflictException", f"batch evaluation {job['batchEvaluationId']} is "
                               f"{job['status']}: stop it before deleting it")
        del self.fake.jobs[job["batchEvaluationId"]]
        return {"batchEvaluationId": job["batchEvaluationId"], "batchEvaluationArn": job["batchEvaluationArn"],
                "status": "DELETING"}

    def Evaluate(self, params: dict[str, Any]) -> dict[str, Any]:
        evaluator_id = params["evaluatorId"]
        builtin = evaluator_id.startswith(("Builtin.", "ThirdParty."))
        arn = (f"arn:aws:bedrock-agentcore:::evaluator/{evaluator_id}" if builtin
               else f"arn:aws:bedrock-agentcore:{self.fake.region}:{ACCOUNT}:evaluator/{evaluator_id}")
        name = evaluator_id if builtin else evaluator_id.rsplit("-", 1)[0]
        results = [{"evaluatorArn": arn, "evaluatorId": evaluator_id, "evaluatorName": name} | result
                   for result in self.fake.evaluate_fn(evaluator_id, params)]
        return {"evaluationResults": results}


def result_event(result: ScriptedResult, job: Mapping[str, Any], service: str | None) -> dict[str, Any]:
    """One per-session result as the service logs it: an OpenTelemetry ``gen_ai.evaluation.result`` event record
    that references the session and, where it has one, the trace and span evaluated (attributes in the GenAI
    semantic conventions, a ``body`` in the data plane's ``evaluationResults`` item shape)."""
    context = {key: value for key, value in (("sessionId", result.session_id), ("traceId", result.trace_id),
                                             ("spanId", result.span_id)) if value is not None}
    attributes: dict[str, Any] = {"event.name": RESULT_EVENT_NAME, "session.id": result.session_id,
                                  "gen_ai.evaluation.name": result.evaluator_id,
                                  "aws.bedrock_agentcore.evaluator.id": result.evaluator_id,
                                  "aws.bedrock_agentcore.batch_evaluation.id": job["batchEvaluationId"],
                                  "aws.bedrock_agentcore.batch_evaluation.arn": job["batchEvaluationArn"]}
    optional = {"gen_ai.evaluation.score.value": result.value, "gen_ai.evaluation.score.label": result.label,
                "gen_ai.evaluation.explanation": result.explanation, "error.type": result.error_code}
    attributes |= {key: value for key, value in optional.items() if value is not None}
    body = {"evaluatorId": result.evaluator_id, "evaluatorName": result.evaluator_id,
            "context": {"spanContext": context}}
    body |= {key: value for key, value in (("value", result.value), ("label", result.label),
                                           ("explanation", result.explanation), ("errorCode", result.error_code),
                                           ("errorMessage", result.error_message)) if value is not None}
    record: dict[str, Any] = {"resource": {"attributes": {"service.name": service} if service else {}},
                              "scope": {"name": "bedrock-agentcore.evaluations"},
                              "timeUnixNano": time.time_ns(), "severityNumber": 17 if result.error_code else 9}
    record |= {key: value for key, value in (("traceId", result.trace_id), ("spanId", result.span_id)) if value}
    return record | {"attributes": attributes, "body": body}


class _Handler(JsonHandler):
    server_version = "FakeAgentCoreEvaluations/1.0"

    @property
    def fake(self) -> FakeAgentCoreEvaluations:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/_fake/stats":
            stats = self.fake.service.stats() | {"calls": dict(self.fake.calls), "jobs": len(self.fake.jobs)}
            return self.send(200, json.dumps(stats).encode())
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _error(self, status: int, code: str, message: str) -> None:
        self.send(status, json.dumps({"message": message}).encode(), headers={"x-amzn-ErrorType": code})

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        url = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        found = route(fake.model, method, url.path)
        if found is None:
            return self._error(404, "UnknownOperationException", f"no operation for {method} {url.path}")
        name, labels = found
        operation = fake.model.operation_model(name)
        try:
            params = request_params(operation, labels, dict(urllib.parse.parse_qsl(url.query)), body)
        except ValueError as exc:
            return self._error(400, "ValidationException", f"{name}: malformed request: {exc}")
        fault = fake.service.admit({"operation": name, "params": params})
        if fault is not None:
            return self.send_fault(fault)
        with fake.lock:
            fake.requests.append((name, params))
            fake.calls[name] += 1
            problems = violations(params, operation.input_shape)
            if problems:
                return self._error(400, "ValidationException", f"{name}: " + "; ".join(problems))
            try:
                reply = getattr(_Operations(fake), name)(params)
            except ServiceError as exc:
                return self._error(exc.status, exc.code, exc.message)
        drift = violations(reply, operation.output_shape)
        if drift:  # the fake, not the caller, is wrong: fail loudly
            return self._error(500, "InternalServerException", f"fake {name} reply off the model: {drift}")
        self.send(int(operation.http.get("responseCode", 200)), json.dumps(reply).encode())


if __name__ == "__main__":
    serve_cli(lambda port: FakeAgentCoreEvaluations(port=port))
