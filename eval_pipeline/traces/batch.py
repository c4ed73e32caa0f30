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

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eval_pipeline import paths
from eval_pipeline.inference.model_spec import ModelSpec
from eval_pipeline.traces.batch_judge import JUDGE_MAX_TOKENS, BatchJudge, default_judge
from eval_pipeline.traces.batch_run import JobRunner, StepHook, most_recent_sessions
from eval_pipeline.traces.evaluate_call import MAX_SESSION_SPANS, MAX_TARGET_IDS, evaluate_session, service_result
from eval_pipeline.traces.evaluator_catalog import BUILTIN_CREATED, EvaluatorCatalog
from eval_pipeline.traces.ground_truth import MAX_SESSIONS
from eval_pipeline.traces.job_responses import job_response, start_response, status_response
from eval_pipeline.traces.job_store import ACTIVE, JobRecord, JobStore
from eval_pipeline.traces.request import BatchEvaluationRequest, EvaluationMetadata, validated
from eval_pipeline.traces.service_errors import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
    as_validation_exception,
)
from eval_pipeline.traces.service_shapes import ACCOUNT, fingerprint, new_id, page_request, resource_arn

__all__ = ["ACCOUNT", "BUILTIN_CREATED", "JUDGE_MAX_TOKENS", "MAX_SESSIONS_PER_JOB", "MAX_SESSION_SPANS",
           "MAX_TARGET_IDS", "BatchEvaluationClient", "ConflictException", "ResourceNotFoundException", "StepHook",
           "ValidationException", "default_judge", "most_recent_sessions", "service_result"]

MAX_SESSIONS_PER_JOB = MAX_SESSIONS
"""A job evaluates the 500 sessions that started last (the service's limit)."""


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
        aws_region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.region = aws_region or "local"
        self.background = background
        self.clock = clock or time.time
        self.managed = managed
        self.on_step = on_step
        self.log_to_mlflow = log_to_mlflow
        self.store = JobStore(self.home / "batch_evaluations" / "jobs.sqlite", clock=self.clock)
        self.owner = process_owner()
        self.catalog = EvaluatorCatalog(self.store, root=self.root, region=self.region, clock=self.clock)
        self.judges = BatchJudge(judge, home=self.home, root=self.root)
        self.runner = JobRunner(self.store, self.catalog, self.judges, home=self.home, root=self.root,
                                owner=self.owner, background=background, tracking_uri=self.tracking_uri,
                                log_to_mlflow=log_to_mlflow, aws_region=aws_region, managed=managed,
                                on_step=on_step)
        self.resumed = self.runner.recover()

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
        with as_validation_exception():
            request = validated(BatchEvaluationRequest, data)
        self.catalog.check_ids([ref.evaluatorId for ref in request.evaluators])
        body = request.model_dump(mode="json", exclude_none=True, exclude_unset=True, exclude={"clientToken"})
        request_fingerprint = fingerprint(body)
        now = self.clock()
        job_id = new_id(request.batchEvaluationName)
        job = JobRecord(job_id=job_id, name=request.batchEvaluationName,
                        arn=resource_arn(self.region, "batch-evaluation", job_id), status="PENDING", request=body,
                        fingerprint=request_fingerprint, created_at=now, updated_at=now,
                        client_token=request.clientToken, owner=self.owner)

        def replay(existing: JobRecord) -> JobRecord:
            if existing.fingerprint != request_fingerprint:
                raise ConflictException(
                    f"clientToken {request.clientToken!r} was used for batch evaluation {existing.job_id} with a "
                    "different request; a reused idempotency token with different parameters is a "
                    "ConflictException, as the service reports it: send a new clientToken", field="clientToken")
            return existing

        stored = self.store.create_job(job, replay=replay)
        if stored is job:
            self.runner.launch(job.job_id)
            return start_response(job)
        return start_response(stored, status=stored.status)

    def get_batch_evaluation(self, *, batchEvaluationId: str) -> dict[str, Any]:
        """The job: its request, status, timestamps, ``evaluationResults``, ``errorDetails`` (and ``calibration``,
        our extension, when it was calibrated against the managed service)."""
        return job_response(self.store.require_job(batchEvaluationId), detail=True)

    def list_batch_evaluations(self, *, maxResults: int = 100, nextToken: str | None = None
                               ) -> dict[str, Any]:
        """Jobs newest first, ``maxResults`` (1–100) a page; ``nextToken`` continues."""
        size, before = page_request(maxResults, nextToken)
        jobs = self.store.list_jobs(limit=size + 1, before_seq=before)
        page = jobs[:size]
        response: dict[str, Any] = {"batchEvaluations": [job_response(job, detail=False) for job in page]}
        if len(jobs) > size:
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
        if not self.runner.runs_here(job.job_id):
            self.runner.settle_orphan(job)
            job = self.store.require_job(batchEvaluationId)
        response = status_response(job)
        if "description" in job.request:
            response["description"] = job.request["description"]
        return response

    def delete_batch_evaluation(self, *, batchEvaluationId: str) -> dict[str, Any]:
        """DELETING: a running job is stopped first; then the job, its files and its MLflow run are removed."""
        job = self.store.require_job(batchEvaluationId)
        if job.status == "DELETING":
            return status_response(job)
        running = job.status in ACTIVE
        job = self.store.transition(job.job_id, (job.status,), "DELETING") or self.store.require_job(job.job_id)
        response = status_response(job, "DELETING")
        if not running or not self.runner.is_running(job):
            self.runner.remove(job)  # else its worker (here or in another live process) removes it when it ends
        return response

    def wait_batch_evaluation(self, *, batchEvaluationId: str, timeout: float | None = None) -> str | None:
        """Our extension: wait for this client's worker of the job to end; the job's status then (None when it
        was deleted)."""
        thread = self.runner.threads.get(batchEvaluationId)
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
        return evaluate_session(self.catalog, self.judges, evaluator_id=evaluatorId,
                                evaluation_input=evaluationInput, target=evaluationTarget,
                                references=evaluationReferenceInputs)

    # --- custom evaluators (control plane) ------------------------------------------------------------------

    def create_evaluator(self, *, evaluatorName: str, level: str, evaluatorConfig: Mapping[str, Any],
                         description: str | None = None, clientToken: str | None = None
                         ) -> dict[str, Any]:
        """A custom evaluator (``llmAsAJudge`` or ``codeBased``), checked by building it now; ACTIVE."""
        return self.catalog.create(evaluatorName=evaluatorName, level=level, evaluatorConfig=evaluatorConfig,
                                   description=description, clientToken=clientToken)

    def get_evaluator(self, *, evaluatorId: str, includedData: str | None = None) -> dict[str, Any]:
        """A builtin or custom evaluator with its ``evaluatorConfig``."""
        return self.catalog.get(evaluatorId)

    def list_evaluators(self, *, maxResults: int = 100, nextToken: str | None = None) -> dict[str, Any]:
        """The builtins, then the custom evaluators, a page of ``maxResults`` at a time."""
        return self.catalog.page(maxResults, nextToken)

    def delete_evaluator(self, *, evaluatorId: str) -> dict[str, Any]:
        """Delete a custom evaluator (a builtin cannot be; one that a running job uses is a ConflictException)."""
        return self.catalog.delete(evaluatorId)

    # --- helpers -----------------------------------------------------------------------------------------------

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
        with as_validation_exception():
            validated(EvaluationMetadata, document, file=str(path), prefix="evaluationMetadata")
        return document


def _default_tracking_uri() -> str:
    from eval_pipeline.tracking.mlflow_log import default_tracking_uri

    return default_tracking_uri()
