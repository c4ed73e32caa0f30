"""A scripted fake LLM server speaking three real wire protocols on one 127.0.0.1 port.

* Bedrock runtime Converse (rest-json): ``POST /model/{modelId}/converse`` (modelId percent-encoded).
* SageMaker runtime InvokeEndpoint: ``POST /endpoints/{EndpointName}/invocations`` (TGI list, LMI dict or
  OpenAI chat bodies; inference component from the ``X-Amzn-SageMaker-Inference-Component`` header).
* OpenAI-compatible chat completions: ``POST /v1/chat/completions`` (also ``/chat/completions``), ``GET /v1/models``.
* OpenAI legacy completions: ``POST /v1/completions`` (also ``/completions``) with vLLM's ``echo`` + ``logprobs``:
  prompt log-probabilities over whitespace tokens, each ``prompt_logprob(model, text before it, token)``.

Point real clients at it: ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` = ``server.url``
(with dummy credentials), or ``requests.post(f"{server.url}/v1/chat/completions", ...)``. Faults (throttling, 5xx,
hangs, malformed bodies) are scripted per test and decided by a hash of (seed, request, attempt), so a run is
reproducible whatever the thread interleaving. Control routes for a server in another process:
``GET /_fake/stats``, ``POST /_fake/reset``, ``GET|POST /_fake/config``.

Tools: when a request offers tools (Converse ``toolConfig``, OpenAI ``tools``, also through SageMaker's messages
body) and the ``tool_calls`` script has calls for its prompt, the fake answers with those calls in the protocol's
shape (``toolUse`` blocks and stopReason ``tool_use``; ``message.tool_calls`` and finish_reason ``tool_calls``).
A conversation whose last turn is a tool result gets a text answer. As the services do, it refuses tool results
that answer no call of the assistant turn before them, and Converse tool blocks without ``toolConfig``. Each
recorded request lists the tool names it offered and the tool results it carried (``tools``, ``tool_results``).

CLI: ``python -m tests.fakes.llm_server --port 0 [--latency 0.1] ...`` prints the URL and serves until killed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

AnswerFn = Callable[[str, str], str]
Answer = AnswerFn | Mapping[str, str] | None

ENDPOINT_SHAPES = ("tgi_list", "lmi_dict", "openai")
FAULT_KINDS = (
    "throttle",
    "internal",
    "unavailable",
    "model_timeout",
    "model_error",
    "not_found",
    "validation",
    "access_denied",
    "model_not_ready",
    "hang",
    "malformed",
)
MALFORMED_KINDS = ("mixed", "unexpected", "truncated")
COMPLETION_LOGPROBS = ("echo", "none", "generated_only")
PROTOCOLS = ("bedrock", "sagemaker", "openai")
DEFAULT_ACCOUNT_ID = "123456789012"
REPO_ROOT = Path(__file__).resolve().parents[2]

# kind -> (HTTP status, error code, message); {target} and {account} are filled in.
_AWS_ERRORS: dict[str, dict[str, tuple[int, str, str]]] = {
    "bedrock": {
        "throttle": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
        "internal": (500, "InternalServerException", "The server encountered an internal error."),
        "unavailable": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
        "model_timeout": (408, "ModelTimeoutException", "Model has timed out in processing the request."),
        "model_error": (424, "ModelErrorException", "The model returned an error."),
        "not_found": (404, "ResourceNotFoundException", "The requested resource {target} could not be found."),
        "validation": (400, "ValidationException", "The provided request is not valid."),
        "access_denied": (403, "AccessDeniedException", "You don't have access to the model {target}."),
        "model_not_ready": (429, "ModelNotReadyException", "Model {target} is not ready to serve requests."),
    },
    "sagemaker": {
        "throttle": (429, "ThrottlingException", "Rate exceeded"),
        "internal": (500, "InternalFailure", "An internal failure occurred."),
        "unavailable": (503, "ServiceUnavailable", "The service is unavailable. Try your call again."),
        "model_timeout": (
            424,
            "ModelError",
            "Your invocation timed out while waiting for a response from container primary.",
        ),
        "model_error": (424, "ModelError", 'Received server error (500) from primary with message "model failed".'),
        "not_found": (400, "ValidationError", "Endpoint {target} of account {account} not found."),
        "validation": (400, "ValidationError", "The request is not valid."),
        "access_denied": (403, "AccessDeniedException", "Access denied to endpoint {target}."),
        "model_not_ready": (429, "ModelNotReadyException", "Model {target} is not ready."),
    },
}
# kind -> (HTTP status, error type, error code, message)
_OPENAI_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "throttle": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    "internal": (500, "server_error", None, "The server had an error while processing your request."),
    "unavailable": (503, "server_error", None, "The engine is currently overloaded, please try again later."),
    "model_timeout": (504, "timeout", None, "Request timed out."),
    "model_error": (500, "server_error", "model_error", "The model produced an error."),
    "not_found": (
        404,
        "invalid_request_error",
        "model_not_found",
        "The model `{target}` does not exist or you do not have access to it.",
    ),
    "validation": (400, "invalid_request_error", None, "Invalid request."),
    "access_denied": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "model_not_ready": (503, "server_error", None, "The model `{target}` is loading."),
}

_CONFIG_FIELDS = (
    "answer",
    "latency_s",
    "throttle_rate",
    "error_rate_5xx",
    "hang_rate",
    "hang_s",
    "malformed_rate",
    "malformed_kind",
    "known_models",
    "known_endpoints",
    "known_inference_components",
    "endpoint_shapes",
    "retry_after_s",
    "api_key",
    "seed",
    "account_id",
    "completion_logprobs",
    "tool_calls",
)
_RATE_FIELDS = ("throttle_rate", "error_rate_5xx", "hang_rate", "malformed_rate")


def request_key(path: str, body: bytes | str, *, component: str | None = None) -> str:
    """Stable hash of one logical request: unquoted path (+ inference component) and canonical JSON body."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        canon = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canon = raw
    head = urllib.parse.unquote(path.split("?", 1)[0]) + "\n" + (component or "") + "\n"
    return hashlib.sha256(head.encode() + canon).hexdigest()[:16]


def echo_answer(prompt: str, model: str) -> str:
    """Default answer: a deterministic echo of the last user text."""
    return f"echo: {prompt}"


def word_count(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


_TOKEN = re.compile(r"\s*\S+|\s+")


def fake_tokens(text: str) -> list[tuple[int, str]]:
    """The completions route's tokens: (offset, text) of each word with the whitespace before it."""
    return [(m.start(), m.group()) for m in _TOKEN.finditer(text)]


def prompt_logprob(model: str, before: str, token: str) -> float:
    """The fake's log p(token | before): a fixed number in [-8.05, -0.05) from a hash of the three."""
    return -0.05 - 8.0 * _draw(0, model, 0, f"{before}\x00{token}")


def is_fake_argmax(model: str, before: str, token: str) -> bool:
    """Whether the fake says ``token`` was the most likely next token after ``before`` (about half are)."""
    return _draw(1, model, 0, f"{before}\x00{token}") < 0.5


def _top_logprobs(model: str, before: str, token: str, logprob: float, n: int) -> dict[str, float]:
    """vLLM's top_logprobs entry: the ``n`` most likely tokens plus the actual one."""
    if is_fake_argmax(model, before, token):
        alternatives = {f"{token}~{i}": logprob - 1.0 - i for i in range(max(n - 1, 0))}
        return {token: logprob, **alternatives}
    alternatives = {f"{token}~{i}": logprob / (2.0 + i) for i in range(max(n, 1))}
    return {**alternatives, token: logprob}


@dataclass
class RecordedRequest:
    """One request the fake answered (protocol routes only)."""

    index: int
    protocol: str
    target: str
    component: str | None
    path: str
    body: Any
    key: str
    attempt: int
    headers: dict[str, str]
    status: int = 0
    outcome: str = ""
    duration_s: float = 0.0
    error: str | None = None
    tools: list[str] = field(default_factory=list)
    """Names of the tools the request offered."""
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    """The tool results it carried: ``{"id", "text", "is_error"}`` each, in order."""


@dataclass
class _Reply:
    status: int
    body: bytes
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def well_formed_success(self) -> bool:
        return self.outcome == "ok"


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _draw(seed: int, key: str, attempt: int, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, request key, attempt, salt)."""
    digest = hashlib.sha256(f"{seed}|{key}|{attempt}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _apply_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut the text before the earliest stop sequence; report whether one was hit."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not hits:
        return text, False
    return text[: min(hits)], True


def _truncate_words(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Keep the first max_tokens whitespace words (original spacing kept); report whether it cut."""
    if max_tokens is None:
        return text, False
    words = list(re.finditer(r"\S+", text))
    if len(words) <= max_tokens:
        return text, False
    return (text[: words[max_tokens - 1].end()] if max_tokens > 0 else ""), True


def _as_stop_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(s) for s in value]


def _openai_content_text(content: Any) -> str:
    """Text of an OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return ""


def _openai_prompt(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(last user text, all prompt text) of OpenAI chat messages."""
    texts = [_openai_content_text(m.get("content")) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
    return (users[-1] if users else ""), "\n".join(texts)


def _scripted_calls(cfg: Mapping[str, Any], prompt: str, offered: list[str]) -> list[dict[str, Any]]:
    """The scripted tool calls for ``prompt`` (exact key, else the longest key it contains) among ``offered``."""
    script = cfg["tool_calls"] or {}
    if not offered or not script:
        return []
    key = prompt if prompt in script else max((k for k in script if k and k in prompt), key=len, default=None)
    return [c for c in script.get(key, []) if c["name"] in offered] if key is not None else []


def _converse_tool_traffic(body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(tool names offered in ``toolConfig``, the ``toolResult`` blocks as ``{id, text, is_error}``)."""
    tools = [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools") or []
             if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict) and "name" in t["toolSpec"]]
    results = [{"id": r.get("toolUseId"), "is_error": r.get("status") == "error",
                "text": "\n".join(c["text"] for c in r.get("content") or [] if isinstance(c, dict) and "text" in c)}
               for m in body.get("messages") or [] if isinstance(m, dict)
               for b in m.get("content") or [] if isinstance(b, dict) and isinstance(r := b.get("toolResult"), dict)]
    return tools, results


def _converse_tool_problem(body: dict[str, Any]) -> str | None:
    """Bedrock's refusals of tool traffic: tool blocks without toolConfig, results that answer no preceding call."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    blocks = [[b for b in m.get("content") or [] if isinstance(b, dict)] for m in messages]
    uses_tools = any("toolUse" in b or "toolResult" in b for bs in blocks for b in bs)
    if uses_tools and not body.get("toolConfig"):
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    for i, bs in enumerate(blocks):
        answered = {b["toolResult"].get("toolUseId") for b in bs if isinstance(b.get("toolResult"), dict)}
        if not answered:
            continue
        asked = ({b["toolUse"].get("toolUseId") for b in blocks[i - 1] if isinstance(b.get("toolUse"), dict)}
                 if i > 0 and messages[i - 1].get("role") == "assistant" else set())
        if messages[i].get("role") != "user" or not answered <= asked:
            return (f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse "
                    "blocks of previous turn.")
    return None


def _chat_tool_traffic(body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(tool names offered in ``tools``, the ``tool`` messages as ``{id, text, is_error}``)."""
    tools = [t["function"]["name"] for t in body.get("tools") or []
             if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]]
    results = [{"id": m.get("tool_call_id"), "text": _openai_content_text(m.get("content")), "is_error": False}
               for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "tool"]
    return tools, results


def _chat_tool_problem(body: dict[str, Any]) -> str | None:
    """OpenAI's refusal: a ``tool`` message that answers no call of the assistant message before its run."""
    asked: set[str] = set()
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in asked:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                        "with 'tool_calls'.")
        else:
            asked = {c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict)}
    return None


def _normalize(name: str, value: Any) -> Any:
    """Validate and normalise one scripting attribute."""
    if name in _RATE_FIELDS:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
        return value
    if name in ("latency_s", "hang_s", "retry_after_s"):
        value = float(value)
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return value
    if name in ("known_models", "known_endpoints", "known_inference_components"):
        if value is None:
            return None
        if isinstance(value, str):
            raise TypeError(f"{name} must be a collection of names, not a string")
        return frozenset(str(v) for v in value)
    if name == "endpoint_shapes":
        shapes = dict(value or {})
        bad = {k: v for k, v in shapes.items() if v not in ENDPOINT_SHAPES}
        if bad:
            raise ValueError(f"unknown endpoint shapes {bad}; use one of {ENDPOINT_SHAPES}")
        return shapes
    if name == "completion_logprobs":
        if value not in COMPLETION_LOGPROBS:
            raise ValueError(f"completion_logprobs must be one of {COMPLETION_LOGPROBS}")
        return value
    if name == "malformed_kind":
        if value not in MALFORMED_KINDS:
            raise ValueError(f"malformed_kind must be one of {MALFORMED_KINDS}")
        return value
    if name == "answer":
        if value is None or callable(value):
            return value
        if isinstance(value, Mapping):
            return dict(value)
        raise TypeError("answer must be a callable (prompt, model) -> str, a mapping prompt -> answer, or None")
    if name == "tool_calls":
        script = dict(value or {})
        for prompt, calls in script.items():
            if not isinstance(calls, list) or not all(isinstance(c, Mapping) and isinstance(c.get("name"), str)
                                                      for c in calls):
                raise TypeError(f"tool_calls[{prompt!r}] must be a list of {{name, arguments}} objects")
        return {str(k): [dict(c) for c in calls] for k, calls in script.items()}
    if name == "seed":
        return int(value)
    if name in ("api_key", "account_id"):
        return None if value is None else str(value)
    raise AttributeError(name)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fake: FakeLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed, timed out) is normal here; anything else is printed as usual."""
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)


class FakeLLMServer:
    """In-process fake of Bedrock Converse, SageMaker InvokeEndpoint and OpenAI chat completions.

    Use as a context manager (``with FakeLLMServer() as server: ... server.url``). Every scripting attribute
    can be assigned at any time from any thread (assignments are validated and taken under a lock); each
    request reads one consistent snapshot of them.

    Scripting attributes:
      answer           callable (prompt, model) -> str, or a mapping prompt -> answer (exact key, else the longest
                       key the prompt contains), or None for ``echo: <prompt>``. ``prompt`` is the last user text
                       (Converse / chat messages) or the whole ``inputs`` string (TGI/LMI); ``model`` is the Bedrock
                       model id, the OpenAI ``model``, or the SageMaker inference component / endpoint name.
      latency_s        sleep before answering every protocol request.
      throttle_rate, error_rate_5xx, hang_rate, malformed_rate
                       fractions of requests that get 429 / 500-or-503 / a hang of ``hang_s`` then a model
                       timeout error / a 200 with an unusable body (``malformed_kind``: unexpected|truncated|mixed).
                       Decided by sha256(seed, request_key, attempt), so a retry of the same body draws afresh.
      known_models, known_endpoints, known_inference_components
                       None = any; otherwise others get the service's not-found error.
      endpoint_shapes  {endpoint or component: "tgi_list"|"lmi_dict"|"openai"}; unlisted: inferred from the body.
      retry_after_s    Retry-After (and retry-after-ms) on OpenAI 429s.
      api_key          required OpenAI bearer key (None = no auth).
      seed, account_id (used in SageMaker "Endpoint X of account Y not found.").
      tool_calls       {prompt: [{"name", "arguments": {...}}]}: when a request offers tools and its last user text
                       is (or else contains, longest key first) a prompt here, the reply is those calls (only
                       the ones whose tool was offered); after a tool result the reply is text as usual.
      completion_logprobs
                       what ``/v1/completions`` does with ``echo`` + ``logprobs``: ``echo`` (vLLM: prompt and
                       generated tokens), ``none`` (``logprobs: null``), ``generated_only`` (ignores ``echo``:
                       the generated tokens alone, as llama.cpp's server does).
    ``fail_next(kind, count, protocol=)`` forces exact faults ahead of the random ones (see FAULT_KINDS).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        answer: Answer = None,
        latency_s: float = 0.0,
        throttle_rate: float = 0.0,
        error_rate_5xx: float = 0.0,
        hang_rate: float = 0.0,
        hang_s: float = 30.0,
        malformed_rate: float = 0.0,
        malformed_kind: str = "mixed",
        known_models: Any = None,
        known_endpoints: Any = None,
        known_inference_components: Any = None,
        endpoint_shapes: Mapping[str, str] | None = None,
        retry_after_s: float = 1.0,
        api_key: str | None = None,
        seed: int = 0,
        account_id: str = DEFAULT_ACCOUNT_ID,
        completion_logprobs: str = "echo",
        tool_calls: Mapping[str, Any] | None = None,
        max_recent: int = 1000,
        verbose: bool = False,
    ) -> None:
        object.__setattr__(self, "_lock", threading.RLock())
        self.answer = answer
        self.latency_s = latency_s
        self.throttle_rate = throttle_rate
        self.error_rate_5xx = error_rate_5xx
        self.hang_rate = hang_rate
        self.hang_s = hang_s
        self.malformed_rate = malformed_rate
        self.malformed_kind = malformed_kind
        self.known_models = known_models
        self.known_endpoints = known_endpoints
        self.known_inference_components = known_inference_components
        self.endpoint_shapes = endpoint_shapes
        self.retry_after_s = retry_after_s
        self.api_key = api_key
        self.seed = seed
        self.account_id = account_id
        self.completion_logprobs = completion_logprobs
        self.tool_calls = tool_calls
        self.verbose = verbose
        self._host = host
        self._port = port
        self._max_recent = max_recent
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._forced: collections.deque[tuple[str, str | None]] = collections.deque()
        self._reset_counters()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CONFIG_FIELDS:
            value = _normalize(name, value)
            with self._lock:
                object.__setattr__(self, name, value)
        else:
            object.__setattr__(self, name, value)

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Bind (port 0 = a free port) and serve on a daemon thread."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving: wake sleeping handlers, shut down, close the socket and open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections and self._in_flight == 0:
                    break
            time.sleep(0.01)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self._host}:{self.port}"

    # ---- scripting ---------------------------------------------------------------------------------------

    def configure(self, **settings: Any) -> None:
        """Set several scripting attributes at once (atomically, validated). ``fail_next`` takes a list of kinds."""
        forced = settings.pop("fail_next", None)
        unknown = set(settings) - set(_CONFIG_FIELDS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {list(_CONFIG_FIELDS)}")
        normalized = {k: _normalize(k, v) for k, v in settings.items()}
        with self._lock:
            for k, v in normalized.items():
                object.__setattr__(self, k, v)
            for kind in forced or []:
                self.fail_next(kind)

    def config(self) -> dict[str, Any]:
        """The current scripting attributes as JSON-able values (a callable answer shows as its name)."""
        with self._lock:
            out: dict[str, Any] = {}
            for name in _CONFIG_FIELDS:
                value = getattr(self, name)
                if isinstance(value, frozenset):
                    value = sorted(value)
                elif callable(value):
                    value = f"<callable {getattr(value, '__name__', type(value).__name__)}>"
                out[name] = value
            out["fail_next"] = [kind for kind, _ in self._forced]
            return out

    def fail_next(self, kind: str, count: int = 1, *, protocol: str | None = None) -> None:
        """Force the next ``count`` requests (of ``protocol``, or any) to fail with ``kind`` (see FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if protocol is not None and protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
        with self._lock:
            self._forced.extend([(kind, protocol)] * count)

    # ---- counters ----------------------------------------------------------------------------------------

    def _reset_counters(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_protocol: collections.Counter[str] = collections.Counter()
            self._by_status: collections.Counter[int] = collections.Counter()
            self._by_outcome: collections.Counter[str] = collections.Counter()
            self._completed: collections.Counter[str] = collections.Counter()
            self._attempts: collections.Counter[str] = collections.Counter()
            self._recent: collections.deque[RecordedRequest] = collections.deque(maxlen=self._max_recent)
            self._in_flight = 0
            self._max_in_flight = 0

    def reset(self) -> None:
        """Clear counters, attempt numbers, recent requests and forced faults (scripting attributes stay)."""
        with self._lock:
            self._forced.clear()
            self._reset_counters()

    @property
    def requests_total(self) -> int:
        """Protocol requests received (control routes excluded)."""
        with self._lock:
            return self._requests

    @property
    def requests_by_protocol(self) -> collections.Counter[str]:
        """Requests per protocol: ``bedrock``, ``sagemaker``, ``openai``."""
        with self._lock:
            return collections.Counter(self._by_protocol)

    @property
    def requests_by_status(self) -> collections.Counter[int]:
        """Responses per HTTP status."""
        with self._lock:
            return collections.Counter(self._by_status)

    @property
    def requests_by_outcome(self) -> collections.Counter[str]:
        """Responses per outcome (``ok``, a fault kind, ``client_gone``, ``bad_request``, ``unauthorized``...)."""
        with self._lock:
            return collections.Counter(self._by_outcome)

    @property
    def completed(self) -> collections.Counter[str]:
        """Successful, well-formed, delivered responses keyed by ``request_key`` (a copy)."""
        with self._lock:
            return collections.Counter(self._completed)

    @property
    def duplicates(self) -> dict[str, int]:
        """Request keys completed more than once."""
        with self._lock:
            return {k: n for k, n in self._completed.items() if n > 1}

    @property
    def recent_requests(self) -> list[RecordedRequest]:
        """The last ``max_recent`` finished requests, oldest first."""
        with self._lock:
            return list(self._recent)

    @property
    def recent_bodies(self) -> list[Any]:
        """Parsed JSON bodies of the recent requests (raw text if not JSON)."""
        return [r.body for r in self.recent_requests]

    @property
    def in_flight(self) -> int:
        """Protocol requests being handled now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most protocol requests handled at once since the last reset."""
        with self._lock:
            return self._max_in_flight

    def stats(self, recent: int | None = 100) -> dict[str, Any]:
        """All counters as JSON-able values (what ``GET /_fake/stats`` returns)."""
        with self._lock:
            rec = list(self._recent)
            if recent is not None:
                rec = rec[-recent:] if recent > 0 else []
            return {
                "requests": self._requests,
                "by_protocol": dict(self._by_protocol),
                "by_status": {str(k): v for k, v in self._by_status.items()},
                "by_outcome": dict(self._by_outcome),
                "completed": dict(self._completed),
                "completed_total": sum(self._completed.values()),
                "duplicates": {k: n for k, n in self._completed.items() if n > 1},
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "recent": [asdict(r) for r in rec],
            }

    # ---- request handling (called from handler threads) ----------------------------------------------------

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _begin(
        self, protocol: str, target: str, component: str | None, path: str, body: bytes, headers: Any
    ) -> RecordedRequest:
        key = request_key(path, body, component=component)
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        with self._lock:
            self._requests += 1
            self._by_protocol[protocol] += 1
            self._attempts[key] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return RecordedRequest(
                index=self._requests,
                protocol=protocol,
                target=target,
                component=component,
                path=path,
                body=parsed,
                key=key,
                attempt=self._attempts[key],
                headers={k.lower(): v for k, v in headers.items()},
            )

    def _finish(self, rec: RecordedRequest, reply: _Reply, delivered: bool, started: float) -> None:
        rec.status = reply.status
        rec.outcome = reply.outcome if delivered or reply.outcome != "ok" else "client_gone"
        rec.duration_s = time.monotonic() - started
        with self._lock:
            self._in_flight -= 1
            self._by_status[reply.status] += 1
            self._by_outcome[rec.outcome] += 1
            if rec.outcome == "ok":
                self._completed[rec.key] += 1
            self._recent.append(rec)

    def _undeliver(self, rec: RecordedRequest) -> None:
        """The reply could not be written: a success no longer counts as completed (outcome ``client_gone``)."""
        if rec.outcome != "ok":
            return
        with self._lock:
            for counter, name in ((self._by_outcome, "ok"), (self._completed, rec.key)):
                counter[name] -= 1
                if counter[name] <= 0:
                    del counter[name]
            rec.outcome = "client_gone"
            self._by_outcome["client_gone"] += 1

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {name: getattr(self, name) for name in _CONFIG_FIELDS}

    def _pop_forced(self, protocol: str) -> str | None:
        with self._lock:
            for i, (kind, proto) in enumerate(self._forced):
                if proto is None or proto == protocol:
                    del self._forced[i]
                    return kind
        return None

    def _answer_text(self, cfg: Mapping[str, Any], prompt: str, model: str) -> str:
        answer = cfg["answer"]
        if answer is None:
            return echo_answer(prompt, model)
        if isinstance(answer, Mapping):
            if prompt in answer:
                return str(answer[prompt])
            # a templated prompt (TGI/LMI ``inputs``) still matches the most specific key it contains
            contained = [k for k in answer if k and k in prompt]
            return str(answer[max(contained, key=len)]) if contained else echo_answer(prompt, model)
        return str(answer(prompt, model))

    def _error(self, protocol: str, kind: str, cfg: Mapping[str, Any], target: str, outcome: str = "") -> _Reply:
        """The error reply for a fault kind, in the protocol's own error shape."""
        fill = {"target": target, "account": cfg["account_id"]}
        outcome = outcome or kind
        if protocol == "openai":
            status, etype, code, message = _OPENAI_ERRORS[kind]
            headers = {"Content-Type": "application/json"}
            if kind == "throttle":
                headers["Retry-After"] = f"{cfg['retry_after_s']:g}"
                headers["retry-after-ms"] = str(round(cfg["retry_after_s"] * 1000))
            body = {"error": {"message": message.format(**fill), "type": etype, "param": None, "code": code}}
            return _Reply(status, _json_bytes(body), outcome, headers)
        status, code, message = _AWS_ERRORS[protocol][kind]
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazonaws.fake/",
            "x-amzn-RequestId": str(uuid.uuid4()),
        }
        key = "message" if protocol == "bedrock" else "Message"
        payload: dict[str, Any] = {key: message.format(**fill)}
        if code == "ModelErrorException":
            payload.update(originalStatusCode=500, resourceName=target)
        if code == "ModelError" and kind == "model_error":
            payload.update(OriginalStatusCode=500, OriginalMessage="model failed")
        return _Reply(status, _json_bytes(payload), outcome, headers)

    def _fault(self, protocol: str, rec: RecordedRequest, cfg: Mapping[str, Any]) -> str | None:
        """The fault kind this request gets (forced first, then the seeded hash draw), or None."""
        forced = self._pop_forced(protocol)
        if forced is not None:
            return forced
        u = _draw(cfg["seed"], rec.key, rec.attempt, "fault")
        edge = 0.0
        for kind, rate in (
            ("throttle", cfg["throttle_rate"]),
            ("5xx", cfg["error_rate_5xx"]),
            ("hang", cfg["hang_rate"]),
            ("malformed", cfg["malformed_rate"]),
        ):
            edge += rate
            if u < edge:
                if kind == "5xx":
                    return "internal" if _draw(cfg["seed"], rec.key, rec.attempt, "5xx") < 0.5 else "unavailable"
                return kind
        return None

    def _malformed(self, rec: RecordedRequest, cfg: Mapping[str, Any], good: _Reply) -> _Reply:
        """A 200 whose body the client cannot use: ``{"unexpected": true}`` or the real body cut in half."""
        kind = cfg["malformed_kind"]
        if kind == "mixed":
            kind = "unexpected" if _draw(cfg["seed"], rec.key, rec.attempt, "malformed") < 0.5 else "truncated"
        body = b'{"unexpected": true}' if kind == "unexpected" else good.body[: max(1, len(good.body) // 2)]
        return _Reply(200, body, "malformed", dict(good.headers))

    def handle(
        self, protocol: str, target: str, component: str | None, path: str, body: bytes, headers: Any
    ) -> tuple[_Reply, RecordedRequest, float]:
        """Answer one protocol request; returns (reply, record, started) for the handler to send and finish."""
        started = time.monotonic()
        rec = self._begin(protocol, target, component, path, body, headers)
        cfg = self._snapshot()
        try:
            reply = self._respond(protocol, target, component, rec, cfg, headers, started)
        except Exception as exc:  # an answer callable that raised, or a bug: surface it as a 500
            reply = self._error(protocol, "internal", cfg, target, outcome="exception")
            rec.error = repr(exc)
        return reply, rec, started

    def _respond(
        self,
        protocol: str,
        target: str,
        component: str | None,
        rec: RecordedRequest,
        cfg: Mapping[str, Any],
        headers: Any,
        started: float,
    ) -> _Reply:
        kind = self._fault(protocol, rec, cfg) if isinstance(rec.body, dict) else None
        if kind == "throttle":  # services refuse over-limit requests at once, without doing the work
            return self._error(protocol, kind, cfg, target)
        self._sleep(cfg["latency_s"])
        api_key = cfg["api_key"]
        if protocol == "openai" and api_key is not None and headers.get("Authorization", "") != f"Bearer {api_key}":
            return self._error("openai", "access_denied", cfg, target, outcome="unauthorized")
        body = rec.body
        if not isinstance(body, dict):
            return self._bad_request(protocol, cfg, target, "The request body is not a JSON object.")
        if protocol == "openai":
            target = str(body.get("model") or "")
            rec.target = target
            if not target:
                return self._bad_request(protocol, cfg, target, "You must provide a model parameter.")
        not_found = self._not_found(protocol, target, component, cfg)
        if not_found is not None:
            return not_found
        chat = protocol == "openai" or "messages" in body
        rec.tools, rec.tool_results = (_converse_tool_traffic(body) if protocol == "bedrock"
                                       else _chat_tool_traffic(body) if chat else ([], []))
        problem = (_converse_tool_problem(body) if protocol == "bedrock"
                   else _chat_tool_problem(body) if chat else None)
        if problem is not None:
            return self._bad_request(protocol, cfg, target, problem)
        if kind == "hang":
            self._sleep(cfg["hang_s"])
            return self._error(protocol, "model_timeout", cfg, target, outcome="hang")
        if kind is not None and kind != "malformed":
            return self._error(protocol, kind, cfg, target)
        if protocol == "bedrock":
            good = self._converse(target, body, cfg, started)
        elif protocol == "sagemaker":
            good = self._invoke_endpoint(target, component, body, cfg)
        else:
            good = (self._text_completion(target, body, cfg) if _is_legacy_completions(rec.path)
                    else self._chat_completion(target, body, cfg))
        if good.outcome == "ok" and kind == "malformed":
            return self._malformed(rec, cfg, good)
        return good

    def _bad_request(self, protocol: str, cfg: Mapping[str, Any], target: str, message: str) -> _Reply:
        reply = self._error(protocol, "validation", cfg, target, outcome="bad_request")
        if protocol == "sagemaker":
            payload = {"Message": message, "OriginalStatusCode": 400, "OriginalMessage": message}
            reply.status, reply.body = 424, _json_bytes(payload)
            reply.headers["x-amzn-ErrorType"] = "ModelError:http://internal.amazon.com/coral/com.amazonaws.fake/"
        elif protocol == "bedrock":
            reply.body = _json_bytes({"message": message})
        else:
            err = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
            reply.body = _json_bytes({"error": err})
        return reply

    def _not_found(self, protocol: str, target: str, component: str | None, cfg: Mapping[str, Any]) -> _Reply | None:
        if protocol == "bedrock":
            known = cfg["known_models"]
            if known is not None and target not in known:
                reply = self._error("bedrock", "validation", cfg, target, outcome="unknown_model")
                reply.body = _json_bytes({"message": "The provided model identifier is invalid."})
                return reply
        elif protocol == "openai":
            known = cfg["known_models"]
            if known is not None and target not in known:
                return self._error("openai", "not_found", cfg, target, outcome="unknown_model")
        else:
            known = cfg["known_endpoints"]
            if known is not None and target not in known:
                return self._error("sagemaker", "not_found", cfg, target, outcome="unknown_endpoint")
            known_ic = cfg["known_inference_components"]
            if component is not None and known_ic is not None and component not in known_ic:
                reply = self._error("sagemaker", "not_found", cfg, target, outcome="unknown_inference_component")
                msg = f"Inference Component {component} of account {cfg['account_id']} not found."
                reply.body = _json_bytes({"Message": msg})
                return reply
        return None

    def _generate(
        self, cfg: Mapping[str, Any], prompt: str, model: str, max_tokens: Any, stops: list[str]
    ) -> tuple[str, str]:
        """(answer text, why it ended: ``end`` | ``stop`` | ``length``) with stop sequences and max tokens applied."""
        text = self._answer_text(cfg, prompt, model)
        text, stopped = _apply_stop(text, stops)
        text, cut = _truncate_words(text, None if max_tokens is None else int(max_tokens))
        return text, ("length" if cut else "stop" if stopped else "end")

    def _converse(self, model: str, body: dict[str, Any], cfg: Mapping[str, Any], started: float) -> _Reply:
        """Bedrock Converse success response."""
        messages = body.get("messages") or []
        if not messages or messages[0].get("role") != "user":
            return self._bad_request("bedrock", cfg, model, "A conversation must start with a user message.")

        def block_text(blocks: Any) -> str:
            return "\n".join(b["text"] for b in blocks or [] if isinstance(b, dict) and "text" in b)

        system = block_text(body.get("system"))
        texts = [block_text(m.get("content")) for m in messages]
        users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
        inference = body.get("inferenceConfig") or {}
        prompt = next((t for t in reversed(users) if t), users[-1])  # tool-result turns carry no text
        offered = _converse_tool_traffic(body)[0]
        answered = any("toolResult" in b for b in messages[-1].get("content") or [] if isinstance(b, dict))
        calls = [] if answered else _scripted_calls(cfg, prompt, offered)
        prompt_tokens = word_count(system) + sum(word_count(t) for t in texts)
        if calls:
            key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
            blocks = [{"toolUse": {"toolUseId": f"tooluse_{key}_{i}", "name": c["name"],
                                   "input": c.get("arguments", {})}} for i, c in enumerate(calls)]
            out_tokens = sum(word_count(json.dumps(b)) for b in blocks)
            content, stop = blocks, "tool_use"
        else:
            text, why = self._generate(
                cfg, prompt, model, inference.get("maxTokens"), _as_stop_list(inference.get("stopSequences"))
            )
            out_tokens = word_count(text)
            content = [{"text": text}]
            stop = {"length": "max_tokens", "stop": "stop_sequence", "end": "end_turn"}[why]
        payload = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {
                "inputTokens": prompt_tokens,
                "outputTokens": out_tokens,
                "totalTokens": prompt_tokens + out_tokens,
            },
            "metrics": {"latencyMs": int((time.monotonic() - started) * 1000)},
        }
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())}
        return _Reply(200, _json_bytes(payload), "ok", headers)

    def _chat_payload(self, model: str, body: dict[str, Any], cfg: Mapping[str, Any]) -> dict[str, Any] | None:
        """An OpenAI chat completion object for a chat body, or None if it has no messages."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        last_user, all_text = _openai_prompt(messages)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        answered = isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
        calls = [] if answered else _scripted_calls(cfg, last_user, _chat_tool_traffic(body)[0])
        message: dict[str, Any]
        if calls:
            key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{key}_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
                for i, c in enumerate(calls)]}
            text, finish = "", "tool_calls"
            out_tokens = sum(word_count(json.dumps(c)) for c in message["tool_calls"])
        else:
            text, why = self._generate(cfg, last_user, model, max_tokens, _as_stop_list(body.get("stop")))
            message, finish = {"role": "assistant", "content": text}, "length" if why == "length" else "stop"
            out_tokens = word_count(text)
        prompt_tokens = word_count(all_text)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": out_tokens,
                "total_tokens": prompt_tokens + out_tokens,
            },
        }

    def _text_completion(self, model: str, body: dict[str, Any], cfg: Mapping[str, Any]) -> _Reply:
        """OpenAI legacy completion; with ``echo`` the prompt's tokens come first (first logprob null, as vLLM)."""
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
            return self._bad_request("openai", cfg, model, "'prompt' must be a non-empty string or list of them.")
        max_tokens = body.get("max_tokens", 16)
        n_logprobs = body.get("logprobs")
        mode = cfg["completion_logprobs"]
        echo = bool(body.get("echo")) and mode != "generated_only"
        choices, prompt_total, out_total = [], 0, 0
        for index, prompt in enumerate(prompts):
            text, why = self._generate(cfg, prompt, model, max_tokens, _as_stop_list(body.get("stop")))
            generated = "".join(f" {word}" for word in text.split())
            whole = prompt + generated
            tokens = fake_tokens(prompt) + [(len(prompt) + o, t) for o, t in fake_tokens(generated)]
            n_prompt = len(fake_tokens(prompt))
            shown = tokens if echo else tokens[n_prompt:]
            logprobs = None
            if n_logprobs is not None and mode != "none":
                base = 0 if echo else len(prompt)
                values = [None if o == 0 else prompt_logprob(model, whole[:o], t) for o, t in shown]
                logprobs = {
                    "text_offset": [o - base for o, _ in shown],
                    "token_logprobs": values,
                    "tokens": [t for _, t in shown],
                    "top_logprobs": [None if v is None else _top_logprobs(model, whole[:o], t, v, int(n_logprobs))
                                     for (o, t), v in zip(shown, values, strict=True)],
                }
            choices.append({"index": index, "text": whole if echo else generated, "logprobs": logprobs,
                            "finish_reason": "length" if why == "length" else "stop", "stop_reason": None})
            prompt_total += n_prompt
            out_total += len(tokens) - n_prompt
        payload = {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_total, "completion_tokens": out_total,
                      "total_tokens": prompt_total + out_total},
        }
        return _Reply(200, _json_bytes(payload), "ok", {"Content-Type": "application/json"})

    def _chat_completion(self, model: str, body: dict[str, Any], cfg: Mapping[str, Any]) -> _Reply:
        """OpenAI-compatible chat completion success response."""
        payload = self._chat_payload(model, body, cfg)
        if payload is None:
            return self._bad_request("openai", cfg, model, "'messages' is a required property.")
        return _Reply(200, _json_bytes(payload), "ok", {"Content-Type": "application/json"})

    def _invoke_endpoint(
        self, endpoint: str, component: str | None, body: dict[str, Any], cfg: Mapping[str, Any]
    ) -> _Reply:
        """SageMaker InvokeEndpoint success response in the endpoint's configured (or inferred) shape."""
        model = component or endpoint
        shapes = cfg["endpoint_shapes"]
        shape = shapes.get(component or "", shapes.get(endpoint))
        if shape is None:
            shape = "openai" if "messages" in body else "tgi_list"
        headers = {
            "Content-Type": "application/json",
            "x-Amzn-Invoked-Production-Variant": "AllTraffic",
            "x-amzn-RequestId": str(uuid.uuid4()),
        }
        if "messages" in body:
            chat = self._chat_payload(body.get("model") or model, body, cfg)
            if chat is None:
                return self._bad_request("sagemaker", cfg, endpoint, "messages must be a non-empty list.")
            if shape == "openai":
                return _Reply(200, _json_bytes(chat), "ok", headers)
            choice = chat["choices"][0]
            text, why = choice["message"]["content"] or "", choice["finish_reason"]
            params: dict[str, Any] = {}
            out_tokens = chat["usage"]["completion_tokens"]
        elif isinstance(body.get("inputs"), str):
            prompt = body["inputs"]
            params = body.get("parameters") or {}
            text, why = self._generate(
                cfg, prompt, model, params.get("max_new_tokens"), _as_stop_list(params.get("stop"))
            )
            out_tokens = word_count(text)
            if shape == "openai":
                chat = self._chat_payload(model, {"messages": [{"role": "user", "content": prompt}]}, cfg) or {}
                return _Reply(200, _json_bytes(chat), "ok", headers)
            if params.get("return_full_text"):
                text = prompt + text
        else:
            return self._bad_request("sagemaker", cfg, endpoint, "Input validation error: `inputs` must be provided.")
        item: dict[str, Any] = {"generated_text": text}
        if params.get("details"):
            reason = {"length": "length", "stop": "stop_sequence", "end": "eos_token"}.get(why, why)
            item["details"] = {"finish_reason": reason, "generated_tokens": out_tokens}
        payload: Any = [item] if shape == "tgi_list" else item
        return _Reply(200, _json_bytes(payload), "ok", headers)


def _is_legacy_completions(path: str) -> bool:
    """``/v1/completions`` or ``/completions`` (OpenAI legacy text completions)."""
    return path in ("/v1/completions", "/completions")


def _route(path: str) -> tuple[str, str] | None:
    """(protocol, target) for a protocol path; the target is percent-decoded."""
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "model" and parts[3] == "converse":
        return "bedrock", urllib.parse.unquote(parts[2])
    if len(parts) == 4 and parts[1] == "endpoints" and parts[3] == "invocations":
        return "sagemaker", urllib.parse.unquote(parts[2])
    if path in ("/v1/chat/completions", "/chat/completions") or _is_legacy_completions(path):
        return "openai", ""
    return None


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP layer: read the body, route, hand to the FakeLLMServer, write the reply."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeLLMServer/1.0"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            sys.stderr.write(f"fake-llm {self.address_string()} {format % args}\n")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> bool:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, _json_bytes(obj), {"Content-Type": "application/json"})

    def _client_gone(self) -> bool:
        """True if the peer already closed the connection (e.g. a client read timeout)."""
        try:
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_fake/stats":
            query = urllib.parse.parse_qs(url.query)
            recent = int(query["recent"][0]) if "recent" in query else 100
            self._send_json(200, fake.stats(recent=recent))
        elif url.path == "/_fake/config":
            self._send_json(200, fake.config())
        elif url.path == "/health":
            self._send_json(200, {})
        elif url.path in ("/v1/models", "/models"):
            known = fake.config()["known_models"] or []
            self._send_json(
                200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in known]}
            )
        else:
            self._send_json(404, {"message": f"no route for GET {url.path}"})

    def do_POST(self) -> None:
        fake = self.server.fake
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_fake/"):
            self._control(path, body)
            return
        route = _route(path)
        if route is None:
            self._send(
                404,
                _json_bytes({"message": f"no route for POST {path}"}),
                {"Content-Type": "application/json", "x-amzn-ErrorType": "UnknownOperationException"},
            )
            return
        protocol, target = route
        component = self.headers.get("X-Amzn-SageMaker-Inference-Component") if protocol == "sagemaker" else None
        reply, rec, started = fake.handle(protocol, target, component, path, body, self.headers)
        if reply.outcome == "ok" and self._client_gone():
            fake._finish(rec, reply, False, started)
            return
        # count before writing, so a client that has the reply in hand also sees it in the counters
        fake._finish(rec, reply, True, started)
        if not self._send(reply.status, reply.body, reply.headers):
            fake._undeliver(rec)

    def _control(self, path: str, body: bytes) -> None:
        fake = self.server.fake
        if path == "/_fake/reset":
            fake.reset()
            self._send_json(200, {"ok": True})
        elif path == "/_fake/config":
            try:
                settings = json.loads(body or b"{}")
                if "answer" in settings and not (settings["answer"] is None or isinstance(settings["answer"], dict)):
                    raise TypeError("answer over HTTP must be a mapping prompt -> answer, or null")
                fake.configure(**settings)
            except (ValueError, TypeError, AttributeError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, fake.config())
        else:
            self._send_json(404, {"message": f"no route for POST {path}"})


# ---- helpers for a fake running in another process ---------------------------------------------------------


def _call(url: str, method: str, data: Any = None, timeout_s: float = 10.0) -> Any:
    payload = None if data is None else _json_bytes(data)
    req = urllib.request.Request(url, data=payload, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def fetch_stats(url: str, recent: int = 100) -> dict[str, Any]:
    """``GET {url}/_fake/stats``: the counters of a fake in any process."""
    return _call(f"{url}/_fake/stats?recent={recent}", "GET")


def reset_remote(url: str) -> None:
    """``POST {url}/_fake/reset``."""
    _call(f"{url}/_fake/reset", "POST", {})


def configure_remote(url: str, **settings: Any) -> dict[str, Any]:
    """``POST {url}/_fake/config`` with JSON settings (no callables); returns the new config."""
    return _call(f"{url}/_fake/config", "POST", settings)


class FakeLLMServerProcess:
    """The fake in a child process (``python -m tests.fakes.llm_server``), for kill -9 and multi-process tests."""

    def __init__(self, *args: str, python: str = sys.executable, startup_timeout_s: float = 20.0) -> None:
        self.args = list(args)
        self.python = python
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> FakeLLMServerProcess:
        """Start the child and wait for the URL it prints."""
        cmd = [self.python, "-m", "tests.fakes.llm_server", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(self.startup_timeout_s)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self.kill()
            raise RuntimeError(f"fake LLM server did not start (got {line!r})")
        self.url = line
        return self

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the child (no cleanup runs in it) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def terminate(self) -> None:
        """SIGTERM the child (it shuts down cleanly) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def stats(self, recent: int = 100) -> dict[str, Any]:
        """The child's counters."""
        return fetch_stats(self.url, recent)

    def reset(self) -> None:
        """Reset the child's counters."""
        reset_remote(self.url)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Script the child (JSON-able settings only)."""
        return configure_remote(self.url, **settings)

    def __enter__(self) -> FakeLLMServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def main(argv: list[str] | None = None) -> int:
    """CLI: serve the fake until killed; prints the base URL on the first stdout line."""
    p = argparse.ArgumentParser(prog="python -m tests.fakes.llm_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency", type=float, default=0.0, help="seconds slept per request")
    p.add_argument("--throttle-rate", type=float, default=0.0)
    p.add_argument("--error-rate-5xx", type=float, default=0.0)
    p.add_argument("--hang-rate", type=float, default=0.0)
    p.add_argument("--hang-s", type=float, default=30.0)
    p.add_argument("--malformed-rate", type=float, default=0.0)
    p.add_argument("--malformed-kind", choices=MALFORMED_KINDS, default="mixed")
    p.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on OpenAI 429s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--answer", default=None, help="reply this text to every request (default: an echo)")
    p.add_argument("--api-key", default=None, help="required OpenAI bearer key")
    p.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    p.add_argument("--known-model", action="append", default=None, help="repeatable; default: any model")
    p.add_argument("--known-endpoint", action="append", default=None, help="repeatable; default: any endpoint")
    p.add_argument("--endpoint", action="append", default=[], metavar="NAME=SHAPE", help=f"shape in {ENDPOINT_SHAPES}")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    a = p.parse_args(argv)
    shapes = dict(item.split("=", 1) for item in a.endpoint)
    server = FakeLLMServer(
        answer=(lambda prompt, model: a.answer) if a.answer is not None else None,
        host=a.host,
        port=a.port,
        latency_s=a.latency,
        throttle_rate=a.throttle_rate,
        error_rate_5xx=a.error_rate_5xx,
        hang_rate=a.hang_rate,
        hang_s=a.hang_s,
        malformed_rate=a.malformed_rate,
        malformed_kind=a.malformed_kind,
        retry_after_s=a.retry_after,
        seed=a.seed,
        api_key=a.api_key,
        account_id=a.account_id,
        known_models=a.known_model,
        known_endpoints=a.known_endpoint,
        endpoint_shapes=shapes,
        verbose=a.verbose,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with server:
        print(server.url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
