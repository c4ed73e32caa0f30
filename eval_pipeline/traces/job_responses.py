"""A stored batch-evaluation job (``job_store.JobRecord``) as the service's response dicts: what
``start_batch_evaluation``, ``get_batch_evaluation`` and ``list_batch_evaluations`` return (datetimes where the
service has timestamps)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eval_pipeline.traces.job_store import JobRecord
from eval_pipeline.traces.service_shapes import timestamp


def start_response(job: JobRecord, status: str = "PENDING") -> dict[str, Any]:
    """``start_batch_evaluation``'s answer (the output log group and stream filled in when unnamed)."""
    response = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "batchEvaluationName": job.name,
                "evaluators": job.request.get("evaluators", []), "status": status,
                "createdAt": timestamp(job.created_at)}
    output = (job.request.get("outputConfig") or {}).get("cloudWatchConfig")
    if output is not None:
        response["outputConfig"] = {"cloudWatchConfig": {
            "logGroupName": output.get("logGroupName") or f"/aws/bedrock-agentcore/evaluations/{job.job_id}",
            "logStreamName": output.get("logStreamName") or job.job_id}}
    if "description" in job.request:
        response["description"] = job.request["description"]
    return response


def job_response(job: JobRecord, *, detail: bool) -> dict[str, Any]:
    """``get_batch_evaluation``'s answer (``detail``: with the data source, output config and ``calibration``, our
    extension) or one of ``list_batch_evaluations``'s summaries."""
    response = {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "batchEvaluationName": job.name,
                "status": job.status, "createdAt": timestamp(job.created_at),
                "updatedAt": timestamp(job.updated_at), "evaluators": job.request.get("evaluators", [])}
    if detail:
        response["dataSourceConfig"] = _with_datetimes(job.request.get("dataSourceConfig", {}))
    for key in ("description", "outputConfig") if detail else ("description",):
        if key in job.request:
            response[key] = job.request[key]
    if job.results is not None:
        response["evaluationResults"] = job.results
    if job.error_details:
        response["errorDetails"] = list(job.error_details)[:1]
    if detail and job.calibration is not None:
        response["calibration"] = job.calibration
    return response


def status_response(job: JobRecord, status: str | None = None) -> dict[str, Any]:
    """``stop_batch_evaluation``'s and ``delete_batch_evaluation``'s answer."""
    return {"batchEvaluationId": job.job_id, "batchEvaluationArn": job.arn, "status": status or job.status}


def _with_datetimes(config: Mapping[str, Any]) -> dict[str, Any]:
    """The data source as stored (JSON) with its time range's ends back as datetimes."""
    config = json.loads(json.dumps(config))
    for source in config.values():
        time_range = ((source or {}).get("filterConfig") or {}).get("timeRange") if isinstance(source, dict) else None
        for key in ("startTime", "endTime"):
            if time_range and isinstance(time_range.get(key), str):
                time_range[key] = datetime.fromisoformat(time_range[key])
    return config
