"""A fake Bedrock control plane for batch inference: create/get model-invocation jobs over the REST protocol.

The job reads its input JSONL from S3 (moto, via the standard ``AWS_ENDPOINT_URL_S3``), answers each record like
the Converse fake would (an echo, or an error for prompts containing ``POISON``), and writes
``<output prefix>/<job id>/<input file>.out`` in shuffled order plus ``manifest.json.out``, as Bedrock does.
Polling reports InProgress once, then Completed (or Failed when ``fail_jobs`` is set).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3

ACCOUNT = "123456789012"


class FakeBedrockBatch:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.creates: list[dict[str, Any]] = []
        self.polls = 0
        self.fail_jobs = False
        self._lock = threading.Lock()

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("clientRequestToken")
        with self._lock:
            self.creates.append(body)
            for job in self.jobs.values():
                if token and job["clientRequestToken"] == token:  # idempotent, as the service is
                    return {"jobArn": job["jobArn"]}
        job_id = uuid.uuid4().hex[:12]
        arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/{job_id}"
        records = self._run(body, job_id)
        with self._lock:
            self.jobs[arn] = {"jobArn": arn, "jobName": body["jobName"], "modelId": body["modelId"],
                              "clientRequestToken": token, "roleArn": body["roleArn"], "records": records,
                              "polls": 0, "inputDataConfig": body["inputDataConfig"],
                              "outputDataConfig": body["outputDataConfig"]}
        return {"jobArn": arn}

    def get(self, arn: str) -> dict[str, Any]:
        with self._lock:
            self.polls += 1
            job = self.jobs[arn]
            job["polls"] += 1
            total = job["records"]
            done = job["polls"] > 1
        status = ("Failed" if self.fail_jobs else "Completed") if done else "InProgress"
        reply = {k: job[k] for k in ("jobArn", "jobName", "modelId", "roleArn", "inputDataConfig",
                                     "outputDataConfig")}
        reply |= {"status": status, "submitTime": "2026-11-22T00:00:00Z", "totalRecordCount": total,
                  "processedRecordCount": total if done else total // 2}
        if status == "Failed":
            reply["message"] = "The role does not have access to the input bucket."
        return reply

    def _run(self, body: dict[str, Any], job_id: str) -> int:
        s3 = boto3.client("s3")
        source = body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].removeprefix("s3://")
        bucket, _, key = source.partition("/")
        lines = [json.loads(line) for line in
                 s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines() if line.strip()]
        out_bucket, _, out_prefix = body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"].removeprefix(
            "s3://").partition("/")
        results = [_answer(line) for line in lines]
        random.Random(0).shuffle(results)  # Bedrock does not keep the input order
        folder = f"{out_prefix.rstrip('/')}/{job_id}"
        name = key.rsplit("/", 1)[-1]
        s3.put_object(Bucket=out_bucket, Key=f"{folder}/{name}.out",
                      Body="".join(json.dumps(r) + "\n" for r in results).encode())
        errors = sum(1 for r in results if "error" in r)
        s3.put_object(Bucket=out_bucket, Key=f"{folder}/manifest.json.out", Body=json.dumps(
            {"totalRecordCount": len(lines), "processedRecordCount": len(lines),
             "successRecordCount": len(lines) - errors, "errorRecordCount": errors}).encode())
        return len(lines)


def _answer(line: dict[str, Any]) -> dict[str, Any]:
    model_input = line["modelInput"]
    prompt = model_input["messages"][-1]["content"][0]["text"]
    if "POISON" in prompt:
        return {"recordId": line["recordId"], "modelInput": model_input,
                "error": {"errorCode": 400, "errorMessage": "Malformed input request, please reformat."}}
    text = " ".join(f"echo: {prompt}".split()[: model_input["inferenceConfig"]["maxTokens"]])
    return {"recordId": line["recordId"], "modelInput": model_input, "modelOutput": {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": len(prompt.split()), "outputTokens": len(text.split()),
                  "totalTokens": len(prompt.split()) + len(text.split())}}}


@contextmanager
def serve_fake_bedrock_batch() -> Iterator[tuple[FakeBedrockBatch, str]]:
    """The fake on a free 127.0.0.1 port: (state, url)."""
    fake = FakeBedrockBatch()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _reply(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path.rstrip("/") == "/model-invocation-job":
                self._reply(200, fake.create(body))
            else:
                self._reply(404, {"message": f"no route {self.path}"}, "UnknownOperationException")

        def do_GET(self) -> None:
            prefix = "/model-invocation-job/"
            arn = unquote(self.path.removeprefix(prefix)) if self.path.startswith(prefix) else None
            if arn in fake.jobs:
                self._reply(200, fake.get(arn))
            else:
                self._reply(404, {"message": f"job {arn} not found"}, "ResourceNotFoundException")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
