"""A fake Bedrock AgentCore data plane (and a sliver of its control plane) on 127.0.0.1, for the real boto3 client.

* InvokeAgentRuntime: ``POST /runtimes/{agentRuntimeArn}/invocations?qualifier=…`` (the ARN percent-encoded),
  session in ``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id``; the reply is JSON, plain text or SSE
  (``text/event-stream``, ``data: <json>`` lines), as ``BedrockAgentCoreApp`` answers.
* StopRuntimeSession: ``POST /runtimes/{agentRuntimeArn}/stopruntimesession``.
* ListAgentRuntimes: ``POST /runtimes/?maxResults=&nextToken=`` over ``server.runtimes`` (paged, unlike moto's).

The agent inside is scripted per test: ``server.agent = fn(invocation) -> reply`` where a reply is a ``Reply`` or
any JSON value; ``invocation.turn`` counts the session's answered requests. An agent that raises answers 424
RuntimeClientError (its container failed). Faults: ``server.service.fail_next("throttle", …)``/``fail_always``.
Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` (and ``…_CONTROL`` for listing) = ``server.url``.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from tests.fakes.service_base import AgentFn, FakeServer, Invocation, JsonHandler, ScriptedService, serve_cli

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


@dataclass(frozen=True)
class Reply:
    """How the scripted agent answers: ``kind`` json (``body`` JSON-encoded), text (``body`` as is) or sse
    (``body`` a list of chunks, each sent as ``data: <json>``; an ``{"error": …}`` chunk is an in-stream error)."""

    body: Any
    kind: str = "json"


def echo_agent(invocation: Invocation) -> Any:
    """The default agent: ``{"response": "turn <n>: <prompt>"}``."""
    return {"response": f"turn {invocation.turn}: {invocation.payload.get('prompt', '')}"}


def encode_reply(reply: Any) -> tuple[bytes, str]:
    """A reply's body bytes and content type."""
    if not isinstance(reply, Reply):
        reply = Reply(reply)
    if reply.kind == "sse":
        return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in reply.body).encode(), "text/event-stream"
    if reply.kind == "text":
        return str(reply.body).encode(), "text/plain"
    return json.dumps(reply.body).encode(), "application/json"


class AgentCoreFake(FakeServer):
    """The server; ``service`` holds faults and counts, ``stopped`` the sessions stopped, ``runtimes`` the list."""

    def __init__(self, agent: AgentFn = echo_agent, port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.agent: AgentFn = agent
        self.service = ScriptedService()
        self.stopped: list[tuple[str, str | None, str | None]] = []
        self.fail_stop = False
        self.runtimes: list[dict[str, Any]] = []
        self.list_calls = 0

    def add_runtime(self, name: str, runtime_id: str, status: str = "READY", region: str = "us-east-1") -> str:
        arn = f"arn:aws:bedrock-agentcore:{region}:123456789012:runtime/{runtime_id}"
        self.runtimes.append({"agentRuntimeArn": arn, "agentRuntimeId": runtime_id, "agentRuntimeVersion": "1",
                              "agentRuntimeName": name, "description": "", "lastUpdatedAt": 1.7e9,
                              "status": status})
        return arn


class _Handler(JsonHandler):
    server_version = "FakeAgentCore/1.0"

    @property
    def fake(self) -> AgentCoreFake:
        return self.server.fake  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        segments = [urllib.parse.unquote(part) for part in url.path.split("/")]
        body = self.read_body()
        if url.path in ("/runtimes", "/runtimes/"):
            return self._list(query)
        if len(segments) == 4 and segments[1] == "runtimes" and segments[3] == "invocations":
            return self._invoke(segments[2], query.get("qualifier"), body)
        if len(segments) == 4 and segments[1] == "runtimes" and segments[3] == "stopruntimesession":
            return self._stop(segments[2], query.get("qualifier"))
        self.send(404, json.dumps({"message": f"no route {url.path}"}).encode(),
                  headers={"x-amzn-ErrorType": "UnknownOperationException"})

    def _invoke(self, arn: str, qualifier: str | None, body: bytes) -> None:
        session_id = self.headers.get(SESSION_HEADER)
        fake = self.fake
        fault = fake.service.admit({"arn": arn, "qualifier": qualifier, "session_id": session_id, "body": body})
        if fault is not None:
            return self.send_fault(fault)
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", errors="replace")
        invocation = fake.service.record(arn, session_id, payload, qualifier, dict(self.headers))
        try:
            reply = fake.agent(invocation)
        except Exception as exc:  # the agent's container failed: what the service reports as a client error
            return self.send(424, json.dumps({"message": f"agent failed: {exc}"}).encode(),
                             headers={"x-amzn-ErrorType": "RuntimeClientError"})
        data, content_type = encode_reply(reply)
        self.send(200, data, content_type, headers={SESSION_HEADER: session_id or ""})

    def _stop(self, arn: str, qualifier: str | None) -> None:
        session_id = self.headers.get(SESSION_HEADER)
        if self.fake.fail_stop:
            return self.send_fault("internal")
        self.fake.stopped.append((arn, qualifier, session_id))
        self.send(200, b"{}", headers={SESSION_HEADER: session_id or ""})

    def _list(self, query: dict[str, str]) -> None:
        self.fake.list_calls += 1
        start = int(query.get("nextToken") or 0)
        size = int(query.get("maxResults") or 2)  # small pages by default, so paging is exercised
        page = self.fake.runtimes[start:start + size]
        reply: dict[str, Any] = {"agentRuntimes": page}
        if start + size < len(self.fake.runtimes):
            reply["nextToken"] = str(start + size)
        self.send(200, json.dumps(reply).encode())


if __name__ == "__main__":
    serve_cli(lambda port: AgentCoreFake(port=port))
