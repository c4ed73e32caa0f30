"""Bedrock batch inference for large suites: records to S3, one model-invocation job, results joined back.

Records are ``{"recordId", "modelInput"}`` lines (``modelInput`` is a Converse request body); Bedrock writes
``<input>.jsonl.out`` files under the output prefix in an order it does not guarantee, so results are joined on
``recordId``. A record Bedrock could not process is an error row with its code and message.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.aws import aws_client, check_credentials, classify_aws_error
from eval_pipeline.inference.base import (
    Completion,
    GenerationParams,
    GenerationRequest,
    ProgressCallback,
    refuse_tools,
)
from eval_pipeline.inference.bedrock import BedrockSampler, converse_body, parse_converse
from eval_pipeline.inference.remote import Price, TransientError

FINISHED = {"Completed", "PartiallyCompleted"}
FAILED = {"Failed", "Stopped", "Expired"}


class BedrockBatchSampler:
    """Runs a set of requests as one Bedrock batch job; same identity as the online sampler (same outputs)."""

    backend = "bedrock"
    chunk_requests = 50_000
    """Requests per job (Bedrock's per-job record quota); the runner hands over this many at once."""

    def __init__(self, model_id: str, *, s3_uri: str, role_arn: str, region: str | None = None,
                 poll_s: float = 30.0, timeout_hours: int = 24, min_records: int = 100,
                 price: Price | None = None, online: BedrockSampler | None = None) -> None:
        if not s3_uri.startswith("s3://"):
            raise EvalInputError(f"batch_s3_uri must be an s3:// prefix, got {s3_uri!r}", field="batch_s3_uri")
        self.model_id, self.region, self.role_arn = model_id, region, role_arn
        self.bucket, _, prefix = s3_uri.removeprefix("s3://").partition("/")
        self.prefix = prefix.strip("/")
        self.poll_s, self.timeout_hours, self.min_records, self.price = poll_s, timeout_hours, min_records, price
        self.online = online or BedrockSampler(model_id, region=region, price=price)

    def identity(self) -> dict[str, Any]:
        return self.online.identity()

    def preflight(self) -> None:
        check_credentials("bedrock", self.region)

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: ProgressCallback | None = None) -> list[Completion]:
        """A batch job for the requests; below Bedrock's minimum job size they go to the online API. Requests that
        offer tools are refused (EvalInputError): tool use is a conversation, run it on the online ``bedrock``."""
        refuse_tools(requests, "bedrock batch")
        if len(requests) < self.min_records:
            return self.online.generate(requests, params, on_progress)
        job = self._job_name(requests, params)
        s3 = aws_client("s3", region=self.region, timeout_s=120.0, n_concurrent=4)
        bedrock = aws_client("bedrock", region=self.region, timeout_s=60.0, n_concurrent=4)
        input_key = f"{self.prefix}/{job}/input/records.jsonl".lstrip("/")
        output_prefix = f"{self.prefix}/{job}/output/".lstrip("/")
        records = "".join(json.dumps({"recordId": _record_id(i), "modelInput": converse_body(r, params)}) + "\n"
                          for i, r in enumerate(requests))
        try:
            s3.put_object(Bucket=self.bucket, Key=input_key, Body=records.encode())
            arn = bedrock.create_model_invocation_job(
                jobName=job, roleArn=self.role_arn, modelId=self.model_id, clientRequestToken=job,
                modelInvocationType="Converse", timeoutDurationInHours=self.timeout_hours,
                inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{self.bucket}/{input_key}",
                                                       "s3InputFormat": "JSONL"}},
                outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{self.bucket}/{output_prefix}"}},
            )["jobArn"]
            status = self._wait(bedrock, arn, len(requests), on_progress)
        except Exception as exc:
            reason = str(classify_aws_error(exc, f"batch job {job} for {self.model_id}"))
            return [Completion.failed(reason) for _ in requests]
        if status["status"] in FAILED:
            reason = f"batch job {arn} {status['status']}: {status.get('message', '')}".strip()
            return [Completion.failed(reason) for _ in requests]
        outputs = read_outputs(s3, self.bucket, output_prefix)
        results = [_completion(outputs.get(_record_id(i)), arn) for i in range(len(requests))]
        if self.price is not None:
            for completion in results:
                completion.cost_usd = self.price.cost(completion.tokens_in, completion.tokens_out)
        return results

    def _wait(self, bedrock: Any, arn: str, total: int, on_progress: ProgressCallback | None) -> dict[str, Any]:
        reported, hiccups = 0, 0
        while True:
            try:
                status = bedrock.get_model_invocation_job(jobIdentifier=arn)
            except Exception as exc:  # throttled or 5xx while polling: wait and ask again, a bounded number of times
                hiccups += 1
                if not isinstance(classify_aws_error(exc, arn), TransientError) or hiccups > 20:
                    raise
                time.sleep(self.poll_s)
                continue
            processed = min(int(status.get("processedRecordCount") or 0), total)
            if status["status"] in FINISHED | FAILED:
                processed = total
            if on_progress is not None and processed > reported:
                on_progress(processed - reported)
                reported = processed
            if status["status"] in FINISHED | FAILED:
                return status
            time.sleep(self.poll_s)

    def _job_name(self, requests: Sequence[GenerationRequest], params: GenerationParams) -> str:
        """A name fixed by what is asked, so a re-submitted identical job is recognised (clientRequestToken):
        each record's full request identity, sample index included (a job for sample 1 of a prompt is not the
        job for its sample 0, whose outputs would otherwise be read back as sample 1's)."""
        payload = json.dumps([self.identity(), repr(params),
                              [[[m.to_dict() for m in r.messages], r.sample_index] for r in requests]], default=str)
        return f"eval-{hashlib.sha256(payload.encode()).hexdigest()[:24]}"


def read_outputs(s3: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Every output line under the prefix, by recordId (the files' order and layout are Bedrock's)."""
    lines: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".jsonl.out"):
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
            for raw in body.splitlines():
                if raw.strip():
                    record = json.loads(raw)
                    lines[str(record.get("recordId"))] = record
    return lines


def _completion(record: dict[str, Any] | None, arn: str) -> Completion:
    if record is None:
        return Completion.failed(f"batch job {arn}: no output for this record")
    if "error" in record or "modelOutput" not in record:
        error = record.get("error") or {}
        return Completion.failed(f"batch job {arn} record {record.get('recordId')}: "
                                 f"{error.get('errorCode', 'error')}: {error.get('errorMessage', 'no modelOutput')}")
    try:
        return parse_converse(record["modelOutput"], f"batch job {arn}")
    except Exception as exc:
        return Completion.failed(str(exc))


def _record_id(index: int) -> str:
    return f"REC{index:010d}"
