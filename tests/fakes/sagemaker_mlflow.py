"""A SageMaker managed MLflow tracking server for tests: a real ``mlflow server`` (SQLite) on 127.0.0.1 behind a
gateway that does what SageMaker's MLflow front door does before MLflow sees a request: it checks the SigV4
signature (with the test credentials' secret, recomputed by botocore's own signer from what arrived) and the ARN
routing header, then forwards the request unchanged.

The ``sagemaker-mlflow`` plugin sends an ARN's requests to ``$SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT`` when it is set (its
documented override of ``https://<region>.experiments.sagemaker.aws``): point it at ``gateway.url``. ``seen`` keeps
each request's method, path, ``Authorization`` header, ARN header and whether its signature verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTHORIZATION = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                           r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), "
                           r"Signature=(?P<signature>[0-9a-f]{64})$")
ARN_HEADERS = {"x-mlflow-sm-tracking-server-arn": "sagemaker-mlflow", "x-sm-mlflow-app-arn": "sagemaker"}
"""The plugin's routing header per resource kind, and the SigV4 service name it signs that kind's requests for."""


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    authorization: str
    arn: str
    service: str
    verified: bool


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 with a SQLite store in ``folder``; its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--default-artifact-root", str(folder / "art")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):  # polls, not a timing assertion: a server that never answers fails below
            if server.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
            assert answer.status == 200
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


class SageMakerMlflowGateway:
    """``with SageMakerMlflowGateway(upstream, secrets={key_id: secret}) as gateway: gateway.url``."""

    def __init__(self, upstream: str, *, secrets: dict[str, str]) -> None:
        self.upstream, self.secrets = upstream.rstrip("/"), dict(secrets)
        self.seen: list[SeenRequest] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def verify(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, bool]:
        """The service the request was signed for, and whether its signature is right for ``secrets``."""
        match = AUTHORIZATION.match(headers.get("authorization", ""))
        if not match or match["key"] not in self.secrets:
            return "", False
        if headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
            return match["service"], False  # the signature covers the body through this header
        signed = match["signed"].split(";")
        request = AWSRequest(method=method, url=f"http://{headers.get('host', '')}{path}", data=body,
                             headers={name: headers[name] for name in signed if name in headers})
        request.context["timestamp"] = headers.get("x-amz-date", "")
        signer = SigV4Auth(Credentials(match["key"], self.secrets[match["key"]]), match["service"], match["region"])
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        return match["service"], expected == match["signature"] and set(signed) == set(signer.headers_to_sign(request))

    def __enter__(self) -> SageMakerMlflowGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                service, verified = gateway.verify(self.command, self.path, headers, body)
                arn_header = next((name for name in ARN_HEADERS if name in headers), "")
                verified = verified and bool(arn_header) and ARN_HEADERS[arn_header] == service
                with gateway.lock:
                    gateway.seen.append(SeenRequest(self.command, self.path.split("?", 1)[0],
                                                    headers.get("authorization", ""), headers.get(arn_header, ""),
                                                    service, verified))
                if not verified:
                    self._answer(403, b'{"message": "The request signature we calculated does not match"}',
                                 {"Content-Type": "application/json"})
                    return
                forwarded = {name: value for name, value in self.headers.items()
                             if name.lower() not in ("host", "connection", "content-length")}
                request = urllib.request.Request(gateway.upstream + self.path, data=body or None,
                                                 headers=forwarded, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        self._answer(answer.status, answer.read(), dict(answer.headers.items()))
                except urllib.error.HTTPError as error:
                    self._answer(error.code, error.read(), dict(error.headers.items()))

            def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
