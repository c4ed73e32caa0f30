"""The SageMaker control plane for tests: moto for what moto implements (models, endpoint configs, endpoints, model
packages, tags), plus the hub-content calls it lacks (``DescribeHubContent``, ``ImportHubContent``), on one
127.0.0.1 port that speaks SageMaker's JSON protocol (``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``).

Point boto3 at it with ``AWS_ENDPOINT_URL_SAGEMAKER = server.url``; every other operation is forwarded to moto
unchanged, so the real botocore serializer, signer and parser run both ways. moto's endpoints are InService at
once: ``endpoint_statuses`` scripts the statuses DescribeEndpoint reports first (``Creating``, ``Failed``).
"""

from __future__ import annotations

import collections
import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_ACCOUNT = "123456789012"
HUB_OPERATIONS = ("DescribeHubContent", "ImportHubContent")


class SageMakerControlPlane:
    """``with SageMakerControlPlane(moto_url) as plane: plane.url``; ``add_hub_content(...)`` scripts the hub."""

    def __init__(self, moto_url: str, *, region: str = "us-east-1", account: str = DEFAULT_ACCOUNT) -> None:
        self.moto_url, self.region, self.account = moto_url.rstrip("/"), region, account
        self.hub: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        self.operations: collections.Counter[str] = collections.Counter()
        self.endpoint_statuses: collections.deque[str] = collections.deque()
        """Scripted ``EndpointStatus`` values, one per DescribeEndpoint answer, before moto's own (InService)."""
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def add_hub_content(self, hub: str, content_type: str, name: str, version: str, document: dict[str, Any], *,
                        region: str | None = None, account: str | None = None) -> str:
        """Store one hub content version; its ARN (``arn:aws:sagemaker:<region>:<account>:hub-content/…``)."""
        arn = (f"arn:aws:sagemaker:{region or self.region}:{account or self.account}:hub-content/{hub}/"
               f"{content_type}/{name}/{version}")
        now = datetime.now(UTC).timestamp()
        with self.lock:
            self.hub.setdefault((hub, content_type, name), {})[version] = {
                "HubContentName": name, "HubContentArn": arn, "HubContentVersion": version,
                "HubContentType": content_type, "DocumentSchemaVersion": "1.0.0", "HubName": hub,
                "HubArn": arn.split(":hub-content/")[0] + f":hub/{hub}", "HubContentDocument": json.dumps(document),
                "HubContentStatus": "Available", "CreationTime": now, "LastModifiedTime": now}
        return arn

    def handle_hub(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = (body.get("HubName", ""), body.get("HubContentType", ""), body.get("HubContentName", ""))
        if operation == "ImportHubContent":
            arn = self.add_hub_content(*key, body.get("HubContentVersion", "1.0.0"),
                                       json.loads(body.get("HubContentDocument") or "{}"))
            return 200, {"HubArn": arn.split(":hub-content/")[0] + f":hub/{key[0]}", "HubContentArn": arn}
        with self.lock:
            versions = self.hub.get(key, {})
            version = body.get("HubContentVersion") or (max(versions) if versions else None)
            found = versions.get(version) if version else None
        if found is None:
            return 400, {"__type": "ResourceNotFound", "Message": f"Hub content {key[2]} not found in hub {key[0]}"}
        return 200, dict(found)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SageMakerControlPlane:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                with plane.lock:
                    plane.operations[operation] += 1
                if operation in HUB_OPERATIONS:
                    status, answer = plane.handle_hub(operation, json.loads(raw or b"{}"))
                    self._reply(status, json.dumps(answer).encode(), {"Content-Type": "application/x-amz-json-1.1"})
                    return
                forwarded = urllib.request.Request(plane.moto_url + self.path, data=raw, method="POST", headers={
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")})
                try:
                    with urllib.request.urlopen(forwarded, timeout=30) as response:
                        body = response.read()
                        if operation == "DescribeEndpoint" and plane.endpoint_statuses:
                            described = json.loads(body)
                            described["EndpointStatus"] = plane.endpoint_statuses.popleft()
                            body = json.dumps(described).encode()
                        self._reply(response.status, body, dict(response.headers))
                except urllib.error.HTTPError as error:
                    self._reply(error.code, error.read(), dict(error.headers))

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True,
                         name="fake-sagemaker-control").start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> SageMakerControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
