"""What the agent-service fakes (AgentCore, Lambda) share: a threaded 127.0.0.1 server, scripted faults, counts.

A fault is a name from ``FAULTS`` (status, error type): queued with ``fail_next(...)`` (consumed one per request,
in order) or made permanent with ``fail_always``. Every request that reaches a route is an *attempt*; one that is
answered by the scripted agent is an *invocation*, counted per session. ``GET /_fake/stats`` returns the counts as
JSON (for a fake in another process: ``python -m tests.fakes.agentcore --port 0`` prints its URL and serves).
"""

from __future__ import annotations

import argparse
import collections
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS: dict[str, tuple[int, str]] = {
    "throttle": (429, "ThrottlingException"),
    "too_many_requests": (429, "TooManyRequestsException"),
    "internal": (500, "InternalServerException"),
    "service": (500, "ServiceException"),
    "unavailable": (503, "ServiceUnavailableException"),
    "validation": (400, "ValidationException"),
    "not_found": (404, "ResourceNotFoundException"),
    "access_denied": (403, "AccessDeniedException"),
    "runtime_client_error": (424, "RuntimeClientError"),
}


@dataclass
class Invocation:
    """One request the scripted agent answers: which target, which session, its payload and its turn number in
    the session (1-based, counting only answered requests)."""

    target: str
    session_id: str | None
    payload: Any
    turn: int
    qualifier: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class ScriptedService:
    """The shared state of a fake: scripted faults, attempt and invocation records, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: collections.deque[str] = collections.deque()
        self.always: str | None = None
        self.attempts: list[dict[str, Any]] = []
        self.invocations: list[Invocation] = []
        self.per_session: collections.Counter[str | None] = collections.Counter()
        self.state: dict[str | None, dict[str, Any]] = collections.defaultdict(dict)

    def fail_next(self, *kinds: str) -> None:
        """The next requests fail with these faults, one each, in order."""
        unknown = [kind for kind in kinds if kind not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {sorted(FAULTS)}")
        with self.lock:
            self.faults.extend(kinds)

    def fail_always(self, kind: str | None) -> None:
        """Every request fails with this fault (None: stop)."""
        if kind is not None and kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        self.always = kind

    def admit(self, record: dict[str, Any]) -> str | None:
        """Record an attempt; the fault it gets, if any."""
        with self.lock:
            self.attempts.append(record)
            if self.always is not None:
                return self.always
            return self.faults.popleft() if self.faults else None

    def record(self, target: str, session_id: str | None, payload: Any, qualifier: str | None,
               headers: Mapping[str, str]) -> Invocation:
        with self.lock:
            self.per_session[session_id] += 1
            invocation = Invocation(target, session_id, payload, self.per_session[session_id], qualifier,
                                    dict(headers))
            self.invocations.append(invocation)
            return invocation

    def session_ids(self) -> list[str | None]:
        """The session id of each answered request, in order."""
        return [invocation.session_id for invocation in self.invocations]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"attempts": len(self.attempts), "invocations": len(self.invocations),
                    "per_session": {str(key): count for key, count in self.per_session.items()}}


class FakeServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 run in a daemon thread; a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class JsonHandler(BaseHTTPRequestHandler):
    """Request helpers for the fakes' handlers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/_fake/stats":
            return self.send(404, json.dumps({"message": f"no route {self.path}"}).encode())
        self.send(200, json.dumps(self.server.fake.service.stats()).encode())  # type: ignore[attr-defined]

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, body: bytes, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_fault(self, kind: str, extra: Mapping[str, Any] | None = None) -> None:
        status, error_type = FAULTS[kind]
        body = json.dumps({"message": f"scripted {kind}", **(extra or {})}).encode()
        self.send(status, body, headers={"x-amzn-ErrorType": error_type})


AgentFn = Callable[[Invocation], Any]


def serve_cli(factory: Callable[[int], FakeServer], argv: list[str] | None = None) -> None:
    """Serve a fake with its default agent on ``--port`` (0: any free port); print the URL, serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    server = factory(parser.parse_args(argv).port)
    print(server.url, flush=True)
    server.httpd.serve_forever()
