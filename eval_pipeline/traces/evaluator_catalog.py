"""The evaluator part of the control plane: the 16 builtins (``TRACE_EVALUATORS``) beside the custom evaluators
created with ``create_evaluator`` (stored in the job store), listed, described, deleted and built for a job."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval_pipeline.traces.evaluators.base import Evaluator, Level
from eval_pipeline.traces.evaluators.registry import TRACE_EVALUATORS, resolve_evaluator
from eval_pipeline.traces.job_store import ACTIVE, EvaluatorRecord, JobStore
from eval_pipeline.traces.request import CustomEvaluatorShape, validated
from eval_pipeline.traces.service_errors import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
    as_validation_exception,
)
from eval_pipeline.traces.service_shapes import (
    builtin_evaluator_arn,
    fingerprint,
    new_id,
    page_request,
    resource_arn,
    timestamp,
)

BUILTIN_CREATED = datetime(2025, 1, 1, tzinfo=UTC)


class EvaluatorCatalog:
    """Builtin and custom evaluators: the ``*_evaluator`` API methods' work, and the evaluators a job runs."""

    def __init__(self, store: JobStore, *, root: Path, region: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.root = root
        self.region = region
        self.clock = clock

    def create(self, *, evaluatorName: str, level: str, evaluatorConfig: Mapping[str, Any],
               description: str | None = None, clientToken: str | None = None) -> dict[str, Any]:
        """A custom evaluator (``llmAsAJudge`` or ``codeBased``), checked by building it now; ACTIVE."""
        from eval_pipeline.traces.evaluators.custom import custom_evaluator

        data: dict[str, Any] = {"evaluatorName": evaluatorName, "level": level,
                                "evaluatorConfig": dict(evaluatorConfig)}
        if description is not None:
            data["description"] = description
        if clientToken is not None and not 33 <= len(clientToken) <= 256:
            raise ValidationException("must be 33 to 256 characters", field="clientToken")
        with as_validation_exception():
            shape = validated(CustomEvaluatorShape, data)
        evaluator_id = new_id(shape.evaluatorName)
        with as_validation_exception(field="evaluatorConfig"):
            custom_evaluator(evaluator_id, shape, root=self.root)
        body = shape.model_dump(mode="json", exclude_none=True)
        request_fingerprint = fingerprint(body)
        now = self.clock()
        record = EvaluatorRecord(evaluator_id=evaluator_id, name=shape.evaluatorName,
                                 arn=resource_arn(self.region, "evaluator", evaluator_id), level=str(shape.level),
                                 config=body["evaluatorConfig"], created_at=now, updated_at=now,
                                 description=shape.description, client_token=clientToken,
                                 fingerprint=request_fingerprint)

        def replay(existing: EvaluatorRecord) -> EvaluatorRecord:
            if existing.fingerprint != request_fingerprint:
                raise ConflictException(f"clientToken {clientToken!r} was used for evaluator {existing.evaluator_id} "
                                        "with a different request (ConflictException, as the service reports a "
                                        "reused idempotency token)", field="clientToken")
            return existing

        stored = self.store.create_evaluator(record, replay=replay)
        return {"evaluatorArn": stored.arn, "evaluatorId": stored.evaluator_id,
                "createdAt": timestamp(stored.created_at), "status": "ACTIVE"}

    def get(self, evaluator_id: str) -> dict[str, Any]:
        """One evaluator's summary with its ``evaluatorConfig`` (empty for a builtin)."""
        record = self.store.get_evaluator(evaluator_id)
        if record is not None:
            return {**custom_summary(record), "evaluatorConfig": record.config}
        if evaluator_id in TRACE_EVALUATORS:
            return {**builtin_summary(evaluator_id), "evaluatorConfig": {}}
        raise ResourceNotFoundException(f"no evaluator with id {evaluator_id!r}", field="evaluatorId")

    def page(self, max_results: int = 100, next_token: str | None = None) -> dict[str, Any]:
        """The builtins, then the custom evaluators, a page of ``max_results`` at a time."""
        size, start = page_request(max_results, next_token)
        everything = [builtin_summary(name) for name in sorted(TRACE_EVALUATORS.names())]
        everything += [custom_summary(record) for record in self.store.list_evaluators()]
        start = start or 0
        page = everything[start:start + size]
        response: dict[str, Any] = {"evaluators": page}
        if start + len(page) < len(everything):
            response["nextToken"] = str(start + len(page))
        return response

    def delete(self, evaluator_id: str) -> dict[str, Any]:
        """Delete a custom evaluator (a builtin cannot be; one that a running job uses is a ConflictException)."""
        record = self.store.get_evaluator(evaluator_id)
        if record is None:
            if evaluator_id in TRACE_EVALUATORS:
                raise ValidationException("a builtin evaluator cannot be deleted", field="evaluatorId")
            raise ResourceNotFoundException(f"no evaluator with id {evaluator_id!r}", field="evaluatorId")
        for job in self.store.jobs_with_status(ACTIVE):
            if any(ref.get("evaluatorId") == evaluator_id for ref in job.request.get("evaluators", [])):
                raise ConflictException(f"evaluator {evaluator_id} is used by batch evaluation {job.job_id}, which "
                                        f"is {job.status}", field="evaluatorId")
        self.store.remove_evaluator(evaluator_id)
        return {"evaluatorArn": record.arn, "evaluatorId": record.evaluator_id, "status": "DELETING"}

    def check_ids(self, ids: Iterable[str], *, field: str | None = None) -> None:
        """Every id a builtin or a custom evaluator, else a ValidationException naming the first that is not."""
        for index, evaluator_id in enumerate(ids):
            if evaluator_id in TRACE_EVALUATORS or self.store.get_evaluator(evaluator_id) is not None:
                continue
            known = ", ".join(sorted(TRACE_EVALUATORS.names()))
            raise ValidationException(f"unknown evaluator {evaluator_id!r}: neither a builtin ({known}) nor a custom "
                                      "evaluator created with create_evaluator",
                                      field=field or f"evaluators[{index}].evaluatorId")

    def build(self, ids: list[str]) -> list[Evaluator]:
        """The evaluators with these ids, custom ones built from their stored config."""
        custom: dict[str, Evaluator] = {}
        for evaluator_id in ids:
            record = self.store.get_evaluator(evaluator_id)
            if record is not None:
                from eval_pipeline.traces.evaluators.custom import custom_evaluator

                shape = CustomEvaluatorShape(evaluatorName=record.name, level=Level(record.level),
                                             evaluatorConfig=record.config, description=record.description)
                custom[evaluator_id] = custom_evaluator(evaluator_id, shape, root=self.root)
        return [resolve_evaluator(evaluator_id, custom) for evaluator_id in ids]

    def arn(self, evaluator_id: str) -> str:
        record = self.store.get_evaluator(evaluator_id)
        return record.arn if record is not None else builtin_evaluator_arn(evaluator_id)


def builtin_summary(evaluator_id: str) -> dict[str, Any]:
    """A builtin evaluator as ``list_evaluators`` shows it."""
    summary = {"evaluatorArn": builtin_evaluator_arn(evaluator_id),
               "evaluatorId": evaluator_id, "evaluatorName": evaluator_id, "evaluatorType": "Builtin",
               "provider": "AWS", "status": "ACTIVE", "createdAt": BUILTIN_CREATED, "updatedAt": BUILTIN_CREATED,
               "lockedForModification": True}
    with contextlib.suppress(Exception):  # a builtin whose module cannot load is listed without its level
        summary["level"] = str(TRACE_EVALUATORS.get(evaluator_id).level)
    return summary


def custom_summary(record: EvaluatorRecord) -> dict[str, Any]:
    """A custom evaluator as ``list_evaluators`` shows it."""
    kind = "CustomCode" if "codeBased" in record.config else "Custom"
    summary = {"evaluatorArn": record.arn, "evaluatorId": record.evaluator_id, "evaluatorName": record.name,
               "evaluatorType": kind, "provider": "Custom", "level": record.level, "status": "ACTIVE",
               "createdAt": timestamp(record.created_at), "updatedAt": timestamp(record.updated_at),
               "lockedForModification": False}
    if record.description:
        summary["description"] = record.description
    return summary
