"""Running a batch-evaluation job: the worker's steps (ingest → sessions → evaluate → outputs), its end status,
the checks for a requested stop, and the jobs that dead processes left behind.

A job goes PENDING → IN_PROGRESS → COMPLETED | COMPLETED_WITH_ERRORS | FAILED; a requested stop (STOPPING or
DELETING in the store) is noticed between steps and by the evaluation runner, and wins over the worker's own end.
A job left PENDING or IN_PROGRESS by a process that no longer runs is resumed (from ingestion: its judge calls come
back from the judge cache), one left STOPPING is marked STOPPED, one left DELETING is removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.traces import batch_outputs
from eval_pipeline.traces.batch_judge import BatchJudge, close_judge
from eval_pipeline.traces.evaluator_catalog import EvaluatorCatalog
from eval_pipeline.traces.ground_truth import MAX_SESSIONS
from eval_pipeline.traces.job_store import JobRecord, JobStore
from eval_pipeline.traces.request import BatchEvaluationRequest
from eval_pipeline.traces.service_shapes import finite, jsonable_records

StepHook = Callable[[str, str], None]
"""``hook(batch_evaluation_id, step)`` before each step of a job: ingest, sessions, evaluate, outputs."""

_STOP_REQUESTED = ("STOPPING", "DELETING")


class JobRunner:
    """Runs jobs (in a worker thread each, or inline) and settles the ones nobody runs any more."""

    def __init__(self, store: JobStore, catalog: EvaluatorCatalog, judges: BatchJudge, *, home: Path, root: Path,
                 owner: str, background: bool, tracking_uri: str, log_to_mlflow: bool,
                 aws_region: str | None, managed: Any = None, on_step: StepHook | None = None) -> None:
        self.store, self.catalog, self.judges = store, catalog, judges
        self.home, self.root, self.owner = home, root, owner
        self.background = background
        self.tracking_uri, self.log_to_mlflow = tracking_uri, log_to_mlflow
        self.aws_region, self.managed, self.on_step = aws_region, managed, on_step
        self.threads: dict[str, threading.Thread] = {}
        self._running: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def launch(self, job_id: str) -> None:
        if not self.background:
            self._run(job_id)
            return
        thread = threading.Thread(target=self._run, args=(job_id,), name=f"batch-evaluation-{job_id}", daemon=True)
        self.threads[job_id] = thread
        thread.start()

    def runs_here(self, job_id: str) -> bool:
        """Whether this client is running the job now (in its worker thread, or inline)."""
        return job_id in self._running

    def is_running(self, job: JobRecord) -> bool:
        """Whether a worker runs the job now: this client's, or one in another live process."""
        return self.runs_here(job.job_id) or owner_alive(job.owner)

    def recover(self) -> list[str]:
        """Jobs left behind by dead processes: PENDING/IN_PROGRESS resumed, STOPPING stopped, DELETING removed.
        The ids of the jobs resumed."""
        resumed = []
        for job in self.store.jobs_with_status(("PENDING", "IN_PROGRESS", "STOPPING", "DELETING")):
            if owner_alive(job.owner):
                continue
            if job.status in ("STOPPING", "DELETING"):
                self.settle_orphan(job)
                continue
            if not self.store.claim(job.job_id, job.owner, self.owner):
                continue
            resumed.append(job.job_id)
            self.launch(job.job_id)
        return resumed

    def settle_orphan(self, job: JobRecord | None) -> None:
        """A job nobody runs any more: STOPPING → STOPPED, DELETING → removed."""
        if job is None:
            return
        if job.status == "STOPPING":
            self.store.transition(job.job_id, ("STOPPING",), "STOPPED")
        elif job.status == "DELETING":
            self.remove(job)

    def remove(self, job: JobRecord) -> None:
        """The job, its folder and its MLflow run."""
        batch_outputs.remove_outputs(self.folder(job.job_id), self.tracking_uri)
        self.store.remove_job(job.job_id)

    def folder(self, job_id: str) -> Path:
        return self.home / "batch_evaluations" / job_id

    def _run(self, job_id: str) -> None:
        """The worker: PENDING → IN_PROGRESS → an end status; stops when asked (STOPPING or DELETING)."""
        job = self.store.transition(job_id, ("PENDING", "IN_PROGRESS"), "IN_PROGRESS", owner=self.owner,
                                    results=None, error_details=[])
        if job is None:
            self.settle_orphan(self.store.get_job(job_id))
            return
        self._running.add(job_id)
        try:
            self._work(job)
        except Exception as exc:  # the job records why it failed instead of dying silently
            self._finish(job, "FAILED", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._running.discard(job_id)

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
            self.remove(current)

    def _stop_requested(self, job_id: str) -> bool:
        return self.store.status(job_id) in (*_STOP_REQUESTED, None)

    def _step(self, job: JobRecord, step: str) -> None:
        if self.on_step is not None:
            self.on_step(job.job_id, step)

    # --- the steps -----------------------------------------------------------------------------------------------

    def _work(self, job: JobRecord) -> None:
        from eval_pipeline.traces.evaluation import run_evaluations
        from eval_pipeline.traces.ingest import ingest
        from eval_pipeline.traces.sessions import sessions_from_traces
        from eval_pipeline.traces.summary import evaluation_metrics, evaluator_summaries, session_counts

        request = BatchEvaluationRequest.model_validate(job.request)
        folder = self.folder(job.job_id)
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
        sessions = sessions_from_traces(traces)
        if not sessions:
            self._finish(job, "FAILED", error="no session matched the data source and its filters")
            return
        kept, ignored = most_recent_sessions(sessions, MAX_SESSIONS)
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
        evaluators = self.catalog.build([ref.evaluatorId for ref in request.evaluators])
        metadata = request.evaluationMetadata.by_session() if request.evaluationMetadata is not None else {}
        service = _service_name(request)
        judge = self.judges.setup(evaluators)
        try:
            run = run_evaluations(
                kept, metadata, evaluators, judge=judge, model=service,
                should_stop=lambda: self._stop_requested(job.job_id),
                on_sessions=lambda done: self.store.update(job.job_id, results={
                    **counts, "numberOfSessionsCompleted": done, "numberOfSessionsInProgress": len(kept) - done}))
        finally:
            close_judge(judge)
        results = run.frame.reset_index(drop=True)
        self._step(job, "outputs")
        summaries = evaluator_summaries(results)
        counts = {**session_counts(kept, results, ignored), "evaluatorSummaries": finite(summaries)}
        metrics = evaluation_metrics(results, suite=job.name, model=service or "agent")
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
        folder = self.folder(job.job_id)
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
                                                                               region=self.aws_region)
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
            "managedStatus": response.get("status"), "evaluators": finite(jsonable_records(table)),
            "path": str(folder / "calibration.parquet")})
        return table


def most_recent_sessions(sessions: list[Any], limit: int) -> tuple[list[Any], int]:
    """The ``limit`` sessions that started last (in their given order) and how many were left out."""
    if len(sessions) <= limit:
        return list(sessions), 0
    order = sorted(range(len(sessions)), key=lambda i: (sessions[i].start_ns or 0, sessions[i].session_id),
                   reverse=True)
    keep = set(order[:limit])
    return [session for i, session in enumerate(sessions) if i in keep], len(sessions) - limit


def owner_alive(owner: str | None) -> bool:
    """Whether the process that owns a job (``host|pid|nonce``) still runs."""
    from eval_pipeline.inference.cache import owner_alive as alive

    return owner is not None and alive(owner)


def _service_name(request: BatchEvaluationRequest) -> str | None:
    names = list(getattr(request.dataSourceConfig.source, "serviceNames", []) or [])
    return names[0] if names else None
