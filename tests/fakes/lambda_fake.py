"""A fake AWS Lambda Invoke endpoint on 127.0.0.1, for the real boto3 ``lambda`` client.

``POST /2015-03-31/functions/{FunctionName}/invocations`` (the name or ARN percent-encoded, ``?Qualifier=``): the
scripted handler ``server.handler = fn(invocation) -> value`` gets the event as ``invocation.payload`` (the session
is the payload's ``session_id``) and its return value is the JSON payload. A handler that raises gives what Lambda
gives: HTTP 200, ``X-Amz-Function-Error: Unhandled`` and ``{"errorMessage", "errorType", "stackTrace"}``.
Throttling is ``fail_next("too_many_requests")`` (429 TooManyRequestsException); other faults as in
``service_base.FAULTS``. Point boto3 at it with ``AWS_ENDPOINT_URL_LAMBDA`` = ``server.url``.
"""

from __future__ import annotations

import json
import traceback
import urllib.parse
from typing import Any

from tests.fakes.service_base import AgentFn, FakeServer, Invocation, JsonHandler, ScriptedService, serve_cli


def echo_handler(invocation: Invocation) -> Any:
    """The default function: ``{"response": "turn <n>: <prompt>"}``."""
    return {"response": f"turn {invocation.turn}: {invocation.payload.get('prompt', '')}"}


class LambdaFake(FakeServer):
    """The server; ``service`` holds faults and counts (sessions keyed by the payload's ``session_id``)."""

    def __init__(self, handler: AgentFn = echo_handler, port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.handler: AgentFn = handler
        self.service = ScriptedService()


class _Handler(JsonHandler):
    server_version = "FakeLambda/1.0"

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        segments = [urllib.parse.unquote(part) for part in url.path.split("/")]
        body = self.read_body()
        if not (len(segments) == 5 and segments[1:3] == ["2015-03-31", "functions"]
                and segments[4] == "invocations"):
            return self.send(404, json.dumps({"message": f"no route {url.path}"}).encode(),
                             headers={"x-amzn-ErrorType": "ResourceNotFoundException"})
        fake: LambdaFake = self.server.fake  # type: ignore[attr-defined]
        qualifier = dict(urllib.parse.parse_qsl(url.query)).get("Qualifier")
        try:
            payload: Any = json.loads(body or b"{}")
        except ValueError:
            return self.send(400, json.dumps({"message": "payload is not JSON"}).encode(),
                             headers={"x-amzn-ErrorType": "InvalidRequestContentException"})
        session_id = payload.get("session_id") if isinstance(payload, dict) else None
        fault = fake.service.admit({"function": segments[3], "session_id": session_id, "body": body})
        if fault is not None:
            extra = {"Type": "User", "Reason": "ConcurrentInvocationLimitExceeded"} if fault.endswith("requests") \
                else {}
            return self.send_fault(fault, extra)
        invocation = fake.service.record(segments[3], session_id, payload, qualifier, dict(self.headers))
        try:
            result = fake.handler(invocation)
        except Exception as exc:  # what the Lambda runtime reports for an uncaught exception
            error = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                     "stackTrace": traceback.format_tb(exc.__traceback__)}
            return self.send(200, json.dumps(error).encode(),
                             headers={"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"})
        self.send(200, json.dumps(result).encode(), headers={"X-Amz-Executed-Version": "$LATEST"})


if __name__ == "__main__":
    serve_cli(lambda port: LambdaFake(port=port))
