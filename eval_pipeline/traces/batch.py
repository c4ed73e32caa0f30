"""AgentCore's batch-evaluation API, self-hosted: ``BatchEvaluationClient`` has the boto3 client's method names,
keyword arguments (camelCase) and dict responses (datetimes where the service has timestamps), and runs the job
here with this project's pieces (``traces.ingest``, ``traces.sessions``, ``traces.evaluation``).

```python
client = BatchEvaluationClient()                      # judge: the embedded local model; state under EVAL_PIPELINE_HOME
job = client.start_batch_evaluation(
    batchEvaluationName="travel_agent_nightly",
    evaluators=[{"evaluatorId": "Builtin.TrajectoryInOrderMatch"}, {"evaluatorId": "Builtin.Helpfulness"}],
    dataSourceConfig={"files": {"paths": ["examples/data/traces/travel_agent_spans.jsonl"]}},
    evaluationMetadata="examples/data/traces/travel_agent_ground_truth.json",   # or the sessionMetadata inline
    clientToken="nightly-2026-12-02-000000000000000000")
client.get_batch_evaluation(batchEvaluationId=job["batchEvaluationId"])["status"]
```

Ids and ARNs: a job's id is ``<name>-<10 letters and digits>`` (the service's pattern), its ARN
``arn:aws:bedrock-agentcore:<region>:000000000000:batch-evaluation/<id>`` (account ``000000000000``: a self-hosted
job belongs to no AWS account; region: the client's, else ``$AWS_REGION``, else ``local``). Custom evaluators get
``arn:aws:bedrock-agentcore:<region>:000000000000:evaluator/<id>``, builtins the service's
``arn:aws:bedrock-agentcore:::evaluator/Builtin.<Name>``.

Statuses: PENDING → IN_PROGRESS → COMPLETED (every result has a value) | COMPLETED_WITH_ERRORS (some results are
errors, or some sessions failed) | FAILED (ingestion failed or found no session: nothing evaluated, ``errorDetails``
says why); ``stop_batch_evaluation``: STOPPING → STOPPED (the results so far are kept); ``delete_batch_evaluation``:
DELETING, then the job and its outputs are gone.

``clientToken``: the same token with the same request returns the job it started and does nothing else; the same
token with another request is a ``ConflictException`` (AWS's answer to a reused idempotency token whose parameters
differ). Names are unique among the jobs not deleted (``ConflictException``).

Jobs survive the process: a job left PENDING or IN_PROGRESS by a process that no longer runs is **resumed** when a
client starts (run again from ingestion; its judge calls come back from the judge cache, so nothing is paid twice);
one left STOPPING is marked STOPPED, one left DELETING is deleted.

Our extensions to the service's shapes: ``get_batch_evaluation`` has a ``calibration`` key when the client was given
a managed service to calibrate against (``managed=``), and ``wait_batch_evaluation`` waits for a job run by this
client.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.inference.model_spec import ModelSpec
from eval_pipeline.traces import batch_outputs
from eval_pipeline.traces.evaluators.base import Evaluator, Level
from eval_pipeline.traces.evaluators.registry import TRACE_EVALUATORS, resolve_evaluator
from eval_pipeline.traces.ground_truth import ExpectedTurn, GroundTruth, SessionMetadata
from eval_pipeline.traces.job_store import (
    ACTIVE,
    ConflictException,
    EvaluatorRecord,
    JobRecord,
    JobStore,
    ResourceNotFoundException,
    ValidationException,
)
from eval_pipeline.traces.request import (
    BatchEvaluationRequest,
    CustomEvaluatorShape,
    EvaluationMetadata,
    validated,
)

__all__ = ["BatchEvaluationClient", "ConflictException", "ResourceNotFoundException", "ValidationException"]

ACCOUNT = "000000000000"
MAX_SESSIONS_PER_JOB = 500
MAX_SESSION_SPANS = 20_000
MAX_TARGET_IDS = 10
JUDGE_MAX_TOKENS = 256
BUILTIN_CREATED = datetime(2025, 1, 1, tzinfo=UTC)
_ID_ALPHABET = string.ascii_letters + string.digits
_STOP_REQUESTED = ("STOPPING", "DELETING")

StepHook = Callable[[str, str], None]
"""``hook(batch_evaluation_id, step)`` before each step of a job: ingest, sessions, evaluate, outputs."""


def default_judge() -> ModelSpec:
    """The embedded local model, as a suite's judge defaults to (weak: configure a larger judge for real use)."""
    from eval_pipeline.suites.spec import JudgeSpec

    return JudgeSpec().model


class _ProjectPaths:
    """What a backend needs of a suite, for a model named outside any suite: paths relative to the project."""

    source_path: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def resolve_uri(self, uri: str) -> str:
        return uri if "://" in uri else str(self.resolve_path(uri))


class BatchEvaluationClient:
    """The batch-evaluation data plane (and the evaluator part of the control plane) run on this machine."""

    def __init__(self, *, judge: ModelSpec | None = None, home: Path | None = None, tracking_uri: str | None = None,
                 region: str | None = None, background: bool = True, clock: Callable[[], float] | None = None,
                 managed: Any = None, root: Path | None = None, on_step: StepHook | None = None,
                 log_to_mlflow: bool = True) -> None:
        from eval_pipeline.inference.cache import process_owner

        self.home = Path(home).resolve() if home is not None else paths.home()
        self.root = Path(root).resolve() if root is not None else Path.cwd()
        self.judge = judge
        self.tracking_uri = tracking_uri or (f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}" if home is not None
                                             else _default_tracking_uri())
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "local"
        self._aws_region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.background = background
        self.clock = clock or time.time
        self.managed = managed
        self.on_step = on_step
        self.log_to_mlflow = log_to_mlflow
        self.store = JobStore(self.home / "batch_evaluations" / "jobs.sqlite", clock=self.clock)
        self.owner = process_owner()
        self._threads: dict[str, threading.Thread] = {}
        self._running: set[str] = set()
        self._samplers: dict[str, Any] = {}
        self._samplers_lock = threading.Lock()
        self.resumed = self._recover()

    # --- batch evaluations ----------------------------------------------------------------------------------

    def start_batch_evaluation(self, *, batchEvaluationName: str, evaluators: list[Mapping[str, Any]],
                               dataSourceConfig: Mapping[str, Any], clientToken: str | None = None,
                               evaluationMetadata: Mapping[str, Any] | str | None = None,
                               description: str | None = None,
                               outputConfig: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validate the request, accept it as a PENDING job (or replay the job its ``clientToken`` started) and
        run it; the seed's Value shape."""
        data: dict[str, Any] = {"batchEvaluationName": batchEvaluationName, "evaluators": list(evaluators),
                                "dataSourceConfig": dict(dataSourceConfig)}
        for key, value in (("clientToken", clientToken), ("description", description),
                           ("outputConfig", outputConfig)):
            if value is not None:
                data[key] = value
        if evaluationMetadata is not None:
            data["evaluationMetadata"] = self._metadata_document(evaluationMetadata)
        request = _validated(BatchEvaluationRequest, data)
        self._check_evaluator_ids([ref.evaluatorId for ref in request.evaluators])
        body = request.model_dump(mode="json", exclude_none=True, exclude_unset=True, exclude={"clientToken"})
        fingerprint = _fingerprint(body)
        now = self.clock()
        job_id = _new_id(request.batchEvaluationName)
        job = JobRecord(job_id=job_id, name=request.batchEvaluationName, arn=self._arn("batch-evaluation", job_id),
                        status="PENDING", request=body, fingerprint=fingerprint, created_at=now, updated_at=now,
                        client_token=request.clientToken, owner=self.owner)

        def replay(existing: JobRecord) -> JobRecord:
            if existing.fingerprint != fingerprint:
                raise ConflictException(
                    f"clientToken {request.clientToken!r} was used for batch evaluation {existing.job_id} with a "
                    "different request; a reused idempotency token with different parameters is a "
                    "ConflictException, as the service reports it: send a new clientToken", field="clientToken")
            return existing

        stored = self.store.create_job(job, replay=replay)
        if stored is job:
            self._launch(job.job_id)
            return self._start_response(job)
        return self._start_response(stored, status=stored.status)

    def get_batch_evaluation(self, *, batchEvaluationId: str) -> dict[str, Any]:
        """The job: its request, status, timestamps, ``evaluationResults``, ``errorDetails`` (and ``calibration``,
        our extension, when it was calibrated against the managed service)."""
        job = self.store.require_job(batchEvaluationId)
        response = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn,
                    "batchEvaluationName": job.name, "status": job.status, "createdAt": _time(job.created_at),
                    "updatedAt": _time(job.updated_at), "evaluators": job.request.get("evaluators", []),
                    "dataSourceConfig": _with_datetimes(job.request.get("dataSourceConfig", {}))}
        for key in ("description", "outputConfig"):
            if key in job.request:
                response[key] = job.request[key]
        if job.results is not None:
            response["evaluationResults"] = job.results
        if job.error_details:
            response["errorDetails"] = list(job.error_details)[:1]
        if job.calibration is not None:
            response["calibration"] = job.calibration
        return response

    def list_batch_evaluations(self, *, maxResults: int = 100, nextToken: str | None = None
                               ) -> dict[str, Any]:
        """Jobs newest first, ``maxResults`` (1–100) a page; ``nextToken`` continues."""
        if not 1 <= int(maxResults) <= 100:
            raise ValidationException("must be between 1 and 100", field="maxResults")
        before = None
        if nextToken is not None:
            if not str(nextToken).isdigit():
                raise ValidationException("not a token this API returned", field="nextToken")
            before = int(nextToken)
        jobs = self.store.list_jobs(limit=int(maxResults) + 1, before_seq=before)
        page, more = jobs[:maxResults], len(jobs) > maxResults
        summaries = []
        for job in page:
            summary = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn,
                       "batchEvaluationName": job.name, "status": job.status, "createdAt": _time(job.created_at),
                       "updatedAt": _time(job.updated_at), "evaluators": job.request.get("evaluators", [])}
            if "description" in job.request:
                summary["description"] = job.request["description"]
            if job.results is not None:
                summary["evaluationResults"] = job.results
            if job.error_details:
                summary["errorDetails"] = list(job.error_details)[:1]
            summaries.append(summary)
        response: dict[str, Any] = {"batchEvaluations": summaries}
        if more:
            response["nextToken"] = str(page[-1].seq)
        return response

    def stop_batch_evaluation(self, *, batchEvaluationId: str) -> dict[str, Any]:
        """STOPPING; the worker ends at its next check and the job becomes STOPPED with the results so far.
        Stopping a job that has ended is a ConflictException."""
        job = self.store.transition(batchEvaluationId, ("PENDING", "IN_PROGRESS", "STOPPING"), "STOPPING")
        if job is None:
            current = self.store.require_job(batchEvaluationId)
            raise ConflictException(f"batch evaluation {current.job_id} is {current.status}: only a PENDING or "
                                    "IN_PROGRESS job can be stopped", field="batchEvaluationId")
        if not self._runs_here(job.job_id):
            self._settle_orphan(job)
            job = self.store.require_job(batchEvaluationId)
        response = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "status": job.status}
        if "description" in job.request:
            response["description"] = job.request["description"]
        return response

    def delete_batch_evaluation(self, *, batchEvaluationId: str) -> dict[str, Any]:
        """DELETING: a running job is stopped first; then the job, its files and its MLflow run are removed."""
        job = self.store.require_job(batchEvaluationId)
        if job.status == "DELETING":
            return {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "status": "DELETING"}
        running = job.status in ACTIVE
        job = self.store.transition(job.job_id, (job.status,), "DELETING") or self.store.require_job(job.job_id)
        response = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "status": "DELETING"}
        if not running or not (self._runs_here(job.job_id) or _owner_alive(job.owner)):
            self._remove(job)  # else its worker (here or in another live process) removes it when it ends
        return response

    def wait_batch_evaluation(self, *, batchEvaluationId: str, timeout: float | None = None) -> str | None:
        """Our extension: wait for this client's worker of the job to end; the job's status then (None when it
        was deleted)."""
        thread = self._threads.get(batchEvaluationId)
        if thread is not None:
            thread.join(timeout)
        return self.store.status(batchEvaluationId)

    # --- evaluate ----------------------------------------------------------------------------------------------

    def evaluate(self, *, evaluatorId: str, evaluationInput: Mapping[str, Any],
                 evaluationTarget: Mapping[str, Any] | None = None,
                 evaluationReferenceInputs: list[Mapping[str, Any]] | None = None
                 ) -> dict[str, Any]:
        """One evaluator on one session given inline (its span and event records), now: the data plane's
        ``Evaluate`` response (``evaluationResults``), limited to ``evaluationTarget``'s traces or spans."""
        from eval_pipeline.traces.evaluation import run_evaluations
        from eval_pipeline.traces.otel_records import spans_from_records
        from eval_pipeline.traces.records import RawRecord
        from eval_pipeline.traces.sessions import sessions_from_traces
        from eval_pipeline.traces.spans import spans_frame

        self._check_evaluator_ids([evaluatorId], field="evaluatorId")
        spans = (evaluationInput or {}).get("sessionSpans")
        if not isinstance(spans, list) or not 1 <= len(spans) <= MAX_SESSION_SPANS:
            raise ValidationException(f"give 1 to {MAX_SESSION_SPANS} span and event records",
                                      field="evaluationInput.sessionSpans")
        target_kind, target_ids = _target(evaluationTarget)
        references = _reference_inputs(evaluationReferenceInputs)
        records = [RawRecord(dict(item), source="evaluationInput.sessionSpans", line=index + 1)
                   for index, item in enumerate(spans)]
        sessions = sessions_from_traces(spans_frame(spans_from_records(records)))
        if len(sessions) != 1:
            raise ValidationException(f"the spans must hold exactly one session (they hold {len(sessions)})",
                                      field="evaluationInput.sessionSpans")
        session = sessions[0]
        evaluator = self._evaluators([evaluatorId])[0]
        metadata = {session.session_id: _reference_metadata(session, references)}
        if target_kind is not None and Level(evaluator.level) is not Level.SESSION:
            session = _targeted(session, target_ids)  # only the targeted turns are judged (and paid for)
        judge = self._judge_setup([evaluator])
        try:
            run = run_evaluations([session], metadata, [evaluator], judge=judge, model=session.service)
        finally:
            _close(judge)
        frame = run.frame
        if target_kind == "traceIds":
            frame = frame[frame["trace_id"].isin(target_ids)]
        elif target_kind == "spanIds":
            roots = {turn.trace_id for turn in session.turns if turn.root_span_id in target_ids}
            frame = frame[frame["span_id"].isin(target_ids) | (frame["span_id"].isna() & frame["trace_id"].isin(roots))]
        arns = {evaluatorId: self._evaluator_arn(evaluatorId)}
        return {"evaluationResults": [service_result(row, arns) for row in frame.to_dict("records")]}

    # --- custom evaluators (control plane) ------------------------------------------------------------------

    def create_evaluator(self, *, evaluatorName: str, level: str, evaluatorConfig: Mapping[str, Any],
                         description: str | None = None, clientToken: str | None = None
                         ) -> dict[str, Any]:
        """A custom evaluator (``llmAsAJudge`` or ``codeBased``), checked by building it now; ACTIVE."""
        from eval_pipeline.traces.evaluators.custom import custom_evaluator

        data: dict[str, Any] = {"evaluatorName": evaluatorName, "level": level,
                                "evaluatorConfig": dict(evaluatorConfig)}
        if description is not None:
            data["description"] = description
        if clientToken is not None and not 33 <= len(clientToken) <= 256:
            raise ValidationException("must be 33 to 256 characters", field="clientToken")
        shape = _validated(CustomEvaluatorShape, data)
        evaluator_id = _new_id(shape.evaluatorName)
        try:
            custom_evaluator(evaluator_id, shape, root=self.root)
        except EvalInputError as exc:
            raise ValidationException(exc.reason, file=exc.file, line=exc.line,
                                      field=exc.field or "evaluatorConfig") from None
        body = shape.model_dump(mode="json", exclude_none=True)
        fingerprint = _fingerprint(body)
        now = self.clock()
        record = EvaluatorRecord(evaluator_id=evaluator_id, name=shape.evaluatorName,
                                 arn=self._arn("evaluator", evaluator_id), level=str(shape.level),
                                 config=body["evaluatorConfig"], created_at=now, updated_at=now,
                                 description=shape.description, client_token=clientToken, fingerprint=fingerprint)

        def replay(existing: EvaluatorRecord) -> EvaluatorRecord:
            if existing.fingerprint != fingerprint:
                raise ConflictException(f"clientToken {clientToken!r} was used for evaluator {existing.evaluator_id} "
                                        "with a different request (ConflictException, as the service reports a "
                                        "reused idempotency token)", field="clientToken")
            return existing

        stored = self.store.create_evaluator(record, replay=replay)
        return {"evaluatorArn": stored.arn, "evaluatorId": stored.evaluator_id, "createdAt": _time(stored.created_at),
                "status": "ACTIVE"}

    def get_evaluator(self, *, evaluatorId: str, includedData: str | None = None) -> dict[str, Any]:
        record = self.store.get_evaluator(evaluatorId)
        if record is not None:
            response = self._custom_summary(record)
            response["evaluatorConfig"] = record.config
            return response
        if evaluatorId in TRACE_EVALUATORS:
            return {**self._builtin_summary(evaluatorId), "evaluatorConfig": {}}
        raise ResourceNotFoundException(f"no evaluator with id {evaluatorId!r}", field="evaluatorId")

    def list_evaluators(self, *, maxResults: int = 100, nextToken: str | None = None) -> dict[str, Any]:
        """The builtins, then the custom evaluators, a page of ``maxResults`` at a time."""
        if not 1 <= int(maxResults) <= 100:
            raise ValidationException("must be between 1 and 100", field="maxResults")
        everything = [self._builtin_summary(name) for name in sorted(TRACE_EVALUATORS.names())]
        everything += [self._custom_summary(record) for record in self.store.list_evaluators()]
        start = 0
        if nextToken is not None:
            if not str(nextToken).isdigit():
                raise ValidationException("not a token this API returned", field="nextToken")
            start = int(nextToken)
        page = everything[start:start + int(maxResults)]
        response: dict[str, Any] = {"evaluators": page}
        if start + len(page) < len(everything):
            response["nextToken"] = str(start + len(page))
        return response

    def delete_evaluator(self, *, evaluatorId: str) -> dict[str, Any]:
        """Delete a custom evaluator (a builtin cannot be; one that a running job uses is a ConflictException)."""
        record = self.store.get_evaluator(evaluatorId)
        if record is None:
            if evaluatorId in TRACE_EVALUATORS:
                raise ValidationException("a builtin evaluator cannot be deleted", field="evaluatorId")
            raise ResourceNotFoundException(f"no evaluator with id {evaluatorId!r}", field="evaluatorId")
        for job in self.store.jobs_with_status(ACTIVE):
            if any(ref.get("evaluatorId") == evaluatorId for ref in job.request.get("evaluators", [])):
                raise ConflictException(f"evaluator {evaluatorId} is used by batch evaluation {job.job_id}, which "
                                        f"is {job.status}", field="evaluatorId")
        self.store.remove_evaluator(evaluatorId)
        return {"evaluatorArn": record.arn, "evaluatorId": record.evaluator_id, "status": "DELETING"}

    # --- the job -----------------------------------------------------------------------------------------------

    def _launch(self, job_id: str) -> None:
        if not self.background:
            self._run(job_id)
            return
        thread = threading.Thread(target=self._run, args=(job_id,), name=f"batch-evaluation-{job_id}", daemon=True)
        self._threads[job_id] = thread
        thread.start()

    def _runs_here(self, job_id: str) -> bool:
        """Whether this client is running the job now (in its worker thread, or inline)."""
        return job_id in self._running

    def _run(self, job_id: str) -> None:
        """The worker: PENDING → IN_PROGRESS → an end status; stops when asked (STOPPING or DELETING)."""
        job = self.store.transition(job_id, ("PENDING", "IN_PROGRESS"), "IN_PROGRESS", owner=self.owner,
                                    results=None, error_details=[])
        if job is None:
            self._settle_orphan(self.store.get_job(job_id))
            return
        self._running.add(job_id)
        try:
            self._work(job)
        except Exception as exc:  # the job records why it failed instead of dying silently
            self._finish(job, "FAILED", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._running.discard(job_id)

    def _work(self, job: JobRecord) -> None:
        from eval_pipeline.traces.ingest import ingest

        request = BatchEvaluationRequest.model_validate(job.request)
        folder = self._folder(job.job_id)
        self._step(job, "ingest")
        try:
            traces = ingest(request.dataSourceConfig, root=self.root)
        except Exception as exc:  # FAILED, with the reason in errorDetails
            self._finish(job, "FAILED", error=f"ingestion failed: {exc}")
            return
        if self._stop_requested(job.job_id):
            self._finish(job, "STOPPED")
            return
        self._step(job, "sessions")
        from eval_pipeline.traces.sessions import sessions_from_traces

        sessions = sessions_from_traces(traces)
        if not sessions:
            self._finish(job, "FAILED", error="no session matched the data source and its filters")
            return
        kept, ignored = most_recent_sessions(sessions, MAX_SESSIONS_PER_JOB)
        kept_ids = {session.session_id for session in kept}
        traces = traces[traces["session_id"].isin(kept_ids)].reset_index(drop=True)
        batch_outputs.write_traces(folder, traces)
        counts = {"numberOfSessionsCompleted": 0, "numberOfSessionsInProgress": len(kept),
                  "numberOfSessionsFailed": 0, "totalNumberOfSessions": len(kept),
                  "numberOfSessionsIgnored": ignored, "evaluatorSummaries": []}
        self.store.update(job.job_id, results=counts)
        if self._stop_requested(job.job_id):
            self._finish(job, "STOPPED", results=counts)
            return
        self._step(job, "evaluate")
        evaluators = self._evaluators([ref.evaluatorId for ref in request.evaluators])
        metadata = request.evaluationMetadata.by_session() if request.evaluationMetadata is not None else {}
        service = _service_name(request)
        judge = self._judge_setup(evaluators)
        try:
            from eval_pipeline.traces.evaluation import run_evaluations

            run = run_evaluations(kept, metadata, evaluators, judge=judge, model=service,
                                  should_stop=lambda: self._stop_requested(job.job_id))
        finally:
            _close(judge)
        results = run.frame.reset_index(drop=True)
        self._step(job, "outputs")
        from eval_pipeline.traces.summary import evaluator_summaries, session_counts

        summaries = evaluator_summaries(results)
        counts = {**session_counts(kept, results, ignored), "evaluatorSummaries": _finite(summaries)}
        metrics = self._metrics(results, job.name, service)
        batch_outputs.write_results(folder, results, summaries, metrics)
        if run.stopped or self._stop_requested(job.job_id):
            status = "STOPPED"
        else:
            errored = bool(results["error"].notna().any()) if not results.empty else False
            status = "COMPLETED_WITH_ERRORS" if errored or counts["numberOfSessionsFailed"] else "COMPLETED"
        errors = self._write_outputs(job, request, traces, results, summaries, metrics, status)
        if errors and status == "COMPLETED":
            status = "COMPLETED_WITH_ERRORS"
        self._finish(job, status, results=counts, error="; ".join(errors) if errors else None)

    def _write_outputs(self, job: JobRecord, request: BatchEvaluationRequest, traces: pd.DataFrame,
                       results: pd.DataFrame, summaries: list[dict[str, Any]], metrics: pd.DataFrame | None,
                       status: str) -> list[str]:
        """MLflow, CloudWatch result events, the managed calibration; what failed, as errorDetails."""
        folder = self._folder(job.job_id)
        ids = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "batchEvaluationName": job.name}
        record: dict[str, Any] = {}
        errors: list[str] = []
        calibration = None
        if self.managed is not None:
            try:
                calibration = self._calibrate(job, results, summaries, folder)
            except Exception as exc:
                errors.append(f"calibration against the managed service failed: {exc}")
        try:
            if self.log_to_mlflow:
                record["mlflowRunId"] = batch_outputs.log_job_run(
                    tracking_uri=self.tracking_uri, job=ids, request=job.request, traces=traces, results=results,
                    metrics=metrics, status=status, calibration=calibration)
        except Exception as exc:
            errors.append(f"MLflow logging failed: {exc}")
        output = request.outputConfig.cloudWatchConfig if request.outputConfig is not None else None
        if output is not None:
            try:
                record["resultEvents"] = batch_outputs.write_cloudwatch_events(results, output, job=ids,
                                                                               region=self._aws_region)
            except Exception as exc:
                errors.append(f"writing result events to CloudWatch Logs failed: {exc}")
        batch_outputs.write_outputs_record(folder, record)
        return errors

    def _calibrate(self, job: JobRecord, results: pd.DataFrame, summaries: list[dict[str, Any]],
                   folder: Path) -> pd.DataFrame:
        """The same job on the managed service (``traces.managed``), side by side with ours: both sides'
        evaluator summaries and, when the service's result events can be read, their agreement per target."""
        from eval_pipeline.traces.managed import calibration_table

        response = self.managed.run(job.request)
        theirs = list(((response.get("evaluationResults") or {}).get("evaluatorSummaries")) or [])
        theirs_results = None
        if ((response.get("outputConfig") or {}).get("cloudWatchConfig") or {}).get("logGroupName"):
            theirs_results = self.managed.per_session_results(response)
        table = calibration_table(summaries, theirs, ours_results=results if theirs_results is not None else None,
                                  theirs_results=theirs_results)
        batch_outputs.write_table(folder, "calibration", table)
        self.store.update(job.job_id, calibration={
            "managedBatchEvaluationId": response.get("batchEvaluationId"),
            "managedStatus": response.get("status"), "evaluators": _finite(_jsonable_records(table)),
            "path": str(folder / "calibration.parquet")})
        return table

    def _metrics(self, results: pd.DataFrame, suite: str, model: str | None) -> pd.DataFrame | None:
        from eval_pipeline.traces.summary import evaluation_metrics

        return evaluation_metrics(results, suite=suite, model=model or "agent")

    def _finish(self, job: JobRecord, status: str, *, results: dict[str, Any] | None = None,
                error: str | None = None) -> None:
        """The end status (a requested stop wins over the worker's own end; DELETING removes the job)."""
        changes: dict[str, Any] = {}
        if results is not None:
            changes["results"] = results
        if error is not None:
            changes["error_details"] = [error]
        if status != "STOPPED" and self.store.transition(job.job_id, ("IN_PROGRESS",), status, **changes):
            return
        if self.store.transition(job.job_id, ("IN_PROGRESS", "STOPPING"), "STOPPED", **changes):
            return
        current = self.store.get_job(job.job_id)
        if current is not None and current.status == "DELETING":
            self._remove(current)

    def _settle_orphan(self, job: JobRecord | None) -> None:
        """A job nobody runs any more: STOPPING → STOPPED, DELETING → removed."""
        if job is None:
            return
        if job.status == "STOPPING":
            self.store.transition(job.job_id, ("STOPPING",), "STOPPED")
        elif job.status == "DELETING":
            self._remove(job)

    def _remove(self, job: JobRecord) -> None:
        batch_outputs.remove_outputs(self._folder(job.job_id), self.tracking_uri)
        self.store.remove_job(job.job_id)

    def _recover(self) -> list[str]:
        """Jobs left behind by dead processes: PENDING/IN_PROGRESS resumed, STOPPING stopped, DELETING removed.
        The ids of the jobs resumed."""
        resumed = []
        for job in self.store.jobs_with_status(("PENDING", "IN_PROGRESS", "STOPPING", "DELETING")):
            if _owner_alive(job.owner):
                continue
            if job.status in ("STOPPING", "DELETING"):
                self._settle_orphan(job)
                continue
            if not self.store.claim(job.job_id, job.owner, self.owner):
                continue
            resumed.append(job.job_id)
            self._launch(job.job_id)
        return resumed

    def _stop_requested(self, job_id: str) -> bool:
        return self.store.status(job_id) in (*_STOP_REQUESTED, None)

    def _step(self, job: JobRecord, step: str) -> None:
        if self.on_step is not None:
            self.on_step(job.job_id, step)

    def _folder(self, job_id: str) -> Path:
        return self.home / "batch_evaluations" / job_id

    # --- evaluators and the judge -------------------------------------------------------------------------------

    def _check_evaluator_ids(self, ids: Iterable[str], *, field: str | None = None) -> None:
        for index, evaluator_id in enumerate(ids):
            if evaluator_id in TRACE_EVALUATORS or self.store.get_evaluator(evaluator_id) is not None:
                continue
            known = ", ".join(sorted(TRACE_EVALUATORS.names()))
            raise ValidationException(f"unknown evaluator {evaluator_id!r}: neither a builtin ({known}) nor a custom "
                                      "evaluator created with create_evaluator",
                                      field=field or f"evaluators[{index}].evaluatorId")

    def _evaluators(self, ids: list[str]) -> list[Evaluator]:
        custom: dict[str, Evaluator] = {}
        for evaluator_id in ids:
            record = self.store.get_evaluator(evaluator_id)
            if record is not None:
                from eval_pipeline.traces.evaluators.custom import custom_evaluator

                shape = CustomEvaluatorShape(evaluatorName=record.name, level=Level(record.level),
                                             evaluatorConfig=record.config, description=record.description)
                custom[evaluator_id] = custom_evaluator(evaluator_id, shape, root=self.root)
        return [resolve_evaluator(evaluator_id, custom) for evaluator_id in ids]

    def _judge_setup(self, evaluators: list[Evaluator]) -> Any:
        """The judge of a job with judged evaluators (None otherwise): the client's judge model through its
        backend, the judge cache under the state folder, and ``sampler_for`` for custom evaluators' own models."""
        if not any(getattr(evaluator, "judged", False) for evaluator in evaluators):
            return None
        from eval_pipeline.inference.cache import RequestCache
        from eval_pipeline.traces.evaluation import JudgeSetup

        spec = self.judge or default_judge()
        cache_folder = self.home / "cache"
        cache_folder.mkdir(parents=True, exist_ok=True)
        return JudgeSetup(sampler=self._sampler(spec),
                          params=GenerationParams(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, top_p=1.0, seed=0),
                          label=f"{spec.backend}:{spec.model or spec.endpoint or spec.name}",
                          cache=RequestCache(cache_folder / "judgments.sqlite"), sampler_for=self._sampler)

    def _sampler(self, spec: ModelSpec) -> Any:
        from eval_pipeline.inference.backends import build_sampler

        key = spec.model_dump_json()
        with self._samplers_lock:
            if key not in self._samplers:
                self._samplers[key] = build_sampler(_ProjectPaths(self.root), spec, pd.DataFrame())
            return self._samplers[key]

    def _evaluator_arn(self, evaluator_id: str) -> str:
        record = self.store.get_evaluator(evaluator_id)
        return record.arn if record is not None else f"arn:aws:bedrock-agentcore:::evaluator/{evaluator_id}"

    def _builtin_summary(self, evaluator_id: str) -> dict[str, Any]:
        summary = {"evaluatorArn": f"arn:aws:bedrock-agentcore:::evaluator/{evaluator_id}",
                   "evaluatorId": evaluator_id, "evaluatorName": evaluator_id, "evaluatorType": "Builtin",
                   "provider": "AWS", "status": "ACTIVE", "createdAt": BUILTIN_CREATED, "updatedAt": BUILTIN_CREATED,
                   "lockedForModification": True}
        with contextlib.suppress(Exception):  # a builtin whose module cannot load is listed without its level
            summary["level"] = str(TRACE_EVALUATORS.get(evaluator_id).level)
        return summary

    def _custom_summary(self, record: EvaluatorRecord) -> dict[str, Any]:
        kind = "CustomCode" if "codeBased" in record.config else "Custom"
        summary = {"evaluatorArn": record.arn, "evaluatorId": record.evaluator_id, "evaluatorName": record.name,
                   "evaluatorType": kind, "provider": "Custom", "level": record.level, "status": "ACTIVE",
                   "createdAt": _time(record.created_at), "updatedAt": _time(record.updated_at),
                   "lockedForModification": False}
        if record.description:
            summary["description"] = record.description
        return summary

    # --- shapes ----------------------------------------------------------------------------------------------------

    def _arn(self, kind: str, resource_id: str) -> str:
        return f"arn:aws:bedrock-agentcore:{self.region}:{ACCOUNT}:{kind}/{resource_id}"

    def _start_response(self, job: JobRecord, status: str = "PENDING") -> dict[str, Any]:
        response = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "batchEvaluationName": job.name,
                    "evaluators": job.request.get("evaluators", []), "status": status,
                    "createdAt": _time(job.created_at)}
        output = (job.request.get("outputConfig") or {}).get("cloudWatchConfig")
        if output is not None:
            response["outputConfig"] = {"cloudWatchConfig": {
                "logGroupName": output.get("logGroupName") or f"/aws/bedrock-agentcore/evaluations/{job.job_id}",
                "logStreamName": output.get("logStreamName") or job.job_id}}
        if "description" in job.request:
            response["description"] = job.request["description"]
        return response

    def _metadata_document(self, value: Mapping[str, Any] | str) -> Any:
        """``evaluationMetadata`` given as a file (JSON, relative to the project root) read into its dict."""
        if not isinstance(value, str):
            return dict(value) if isinstance(value, Mapping) else value
        path = Path(value).expanduser()
        path = path if path.is_absolute() else self.root / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationException(f"cannot read the metadata file: {exc.strerror or exc}", file=str(path),
                                      field="evaluationMetadata") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationException(f"not valid JSON: {exc.msg} (column {exc.colno})", file=str(path),
                                      line=exc.lineno, field="evaluationMetadata") from None
        _validated(EvaluationMetadata, document, file=str(path), prefix="evaluationMetadata")
        return document


# --- helpers -----------------------------------------------------------------------------------------------------


def most_recent_sessions(sessions: list[Any], limit: int) -> tuple[list[Any], int]:
    """The ``limit`` sessions that started last (in their given order) and how many were left out."""
    if len(sessions) <= limit:
        return list(sessions), 0
    order = sorted(range(len(sessions)), key=lambda i: (sessions[i].start_ns or 0, sessions[i].session_id),
                   reverse=True)
    keep = set(order[:limit])
    return [session for i, session in enumerate(sessions) if i in keep], len(sessions) - limit


def service_result(row: Mapping[str, Any], arns: Mapping[str, str]) -> dict[str, Any]:
    """A TRACE_EVALUATIONS row as one of ``Evaluate``'s ``evaluationResults``."""
    context = {"sessionId": row["session_id"]}
    for key, column in (("traceId", "trace_id"), ("spanId", "span_id")):
        if not _null(row.get(column)):
            context[key] = row[column]
    result: dict[str, Any] = {"evaluatorArn": arns.get(row["evaluator_id"],
                                                       f"arn:aws:bedrock-agentcore:::evaluator/{row['evaluator_id']}"),
                              "evaluatorId": row["evaluator_id"], "evaluatorName": row["evaluator_name"],
                              "context": {"spanContext": context}}
    if not _null(row.get("explanation")):
        result["explanation"] = str(row["explanation"])[:2048]
    if not _null(row.get("value")):
        result["value"] = float(row["value"])
    if not _null(row.get("label")):
        result["label"] = row["label"]
    if not _null(row.get("tokens_in")) or not _null(row.get("tokens_out")):
        tokens_in = 0 if _null(row.get("tokens_in")) else int(row["tokens_in"])
        tokens_out = 0 if _null(row.get("tokens_out")) else int(row["tokens_out"])
        result["tokenUsage"] = {"inputTokens": tokens_in, "outputTokens": tokens_out,
                                "totalTokens": tokens_in + tokens_out}
    if not _null(row.get("error_code")):
        result["errorCode"] = row["error_code"]
    if not _null(row.get("error")):
        result["errorMessage"] = str(row["error"])[:2048]
    ignored = row.get("ignored_reference_fields")
    result["ignoredReferenceInputFields"] = json.loads(ignored) if isinstance(ignored, str) else []
    return result


def _validated(shape: Any, data: Any, *, file: str | None = None, prefix: str = "") -> Any:
    try:
        return validated(shape, data, file=file, prefix=prefix)
    except EvalInputError as exc:
        raise ValidationException(exc.reason, file=exc.file, line=exc.line, field=exc.field) from None


def _target(target: Mapping[str, Any] | None) -> tuple[str | None, set[str]]:
    if not target:
        return None, set()
    given = [key for key in ("traceIds", "spanIds") if target.get(key) is not None]
    unknown = sorted(set(target) - {"traceIds", "spanIds"})
    if unknown or len(given) != 1:
        raise ValidationException("give exactly one of traceIds, spanIds", field="evaluationTarget")
    ids = target[given[0]]
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_TARGET_IDS:
        raise ValidationException(f"give 1 to {MAX_TARGET_IDS} ids", field=f"evaluationTarget.{given[0]}")
    return given[0], {str(item) for item in ids}


def _targeted(session: Any, ids: set[str]) -> Any:
    """The session with only the turns that a target names (by trace id, root span id or tool span id); each
    turn keeps its own conversation so far, so a judge reads the same context as with the whole session."""
    import dataclasses

    turns = tuple(turn for turn in session.turns
                  if turn.trace_id in ids or turn.root_span_id in ids
                  or any(call.span_id in ids for call in turn.tool_calls))
    return dataclasses.replace(session, turns=turns)


def _reference_inputs(references: list[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    if references is None:
        return []
    if not isinstance(references, list) or not 1 <= len(references) <= 1000:
        raise ValidationException("give 1 to 1000 reference inputs", field="evaluationReferenceInputs")
    for index, reference in enumerate(references):
        where = f"evaluationReferenceInputs[{index}]"
        context = ((reference or {}).get("context") or {}).get("spanContext") or {}
        if not context.get("sessionId"):
            raise ValidationException("needs context.spanContext.sessionId", field=f"{where}.context")
        assertions = reference.get("assertions")
        if assertions is not None and not 1 <= len(assertions) <= 100:
            raise ValidationException("give 1 to 100 assertions", field=f"{where}.assertions")
    return references


def _reference_metadata(session: Any, references: list[Mapping[str, Any]]) -> SessionMetadata:
    """Ground truth for ``evaluate`` from ``evaluationReferenceInputs``: assertions and the expected trajectory
    for the session; an expected response for the trace its context names (the last trace when it names none)."""
    assertions: list[str] = []
    tools: list[str] | None = None
    expected: dict[str, str] = {}
    traces = [turn.trace_id for turn in session.turns]
    for reference in references:
        context = reference["context"]["spanContext"]
        assertions += [item["text"] for item in reference.get("assertions") or []]
        if reference.get("expectedTrajectory") is not None:
            tools = list(reference["expectedTrajectory"].get("toolNames") or [])
        if reference.get("expectedResponse") is not None and traces:
            expected[context.get("traceId") or traces[-1]] = reference["expectedResponse"]["text"]
    turns = tuple(ExpectedTurn(prompt=turn.prompt, expected_response=expected.get(turn.trace_id))
                  for turn in session.turns) if expected else ()
    truth = GroundTruth(assertions=tuple(assertions), expected_tool_names=tuple(tools) if tools is not None else None,
                        turns=turns)
    return SessionMetadata(session.session_id, None, {}, truth)


def _service_name(request: BatchEvaluationRequest) -> str | None:
    names = list(getattr(request.dataSourceConfig.source, "serviceNames", []) or [])
    return names[0] if names else None


def _fingerprint(body: Mapping[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _new_id(name: str) -> str:
    return f"{name}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(10))}"


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _with_datetimes(config: Mapping[str, Any]) -> dict[str, Any]:
    """The data source as stored (JSON) with its time range's ends back as datetimes."""
    config = json.loads(json.dumps(config))
    for source in config.values():
        time_range = ((source or {}).get("filterConfig") or {}).get("timeRange") if isinstance(source, dict) else None
        for key in ("startTime", "endTime"):
            if time_range and isinstance(time_range.get(key), str):
                time_range[key] = datetime.fromisoformat(time_range[key])
    return config


def _owner_alive(owner: str | None) -> bool:
    from eval_pipeline.inference.cache import owner_alive

    return owner is not None and owner_alive(owner)


def _close(judge: Any) -> None:
    cache = getattr(judge, "cache", None)
    if cache is not None:
        cache.close()


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _finite(value: Any) -> Any:
    """NaN/inf as None, through lists and dicts (the stored JSON and the responses hold no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _jsonable_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _default_tracking_uri() -> str:
    from eval_pipeline.tracking.mlflow_log import default_tracking_uri

    return default_tracking_uri()
