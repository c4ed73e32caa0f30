"""What agent services share (an AgentCore runtime, a Lambda function): the payload, the reply, the session, retries.

The service keeps its own conversation state, so each turn sends only what the agent has not yet seen: the
user-side messages since its last reply. The request is JSON::

    {"prompt": <text>, "task_id": <id>, "session_id": <id>, "turn": <1, 2, …>, "task": <the task's data>}

and the reply is JSON ``{"response"|"result"|"output": <text>, "reward"?: <number>, "done"?: <bool>}``, a JSON
string, plain text, or a ``text/event-stream`` body whose ``data:`` lines are joined (JSON chunks contribute their
text, a chunk with an ``error`` key is an error). A service's own ``reward``/``done`` go on the ``AgentTurn``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eval_pipeline.agents.environment import AgentTask, AgentTurn
from eval_pipeline.data.messages import ChatMessage, ToolSpec
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.remote import PermanentError, RetryPolicy, TransientError

log = logging.getLogger(__name__)

TEXT_KEYS = ("response", "result", "output")
"""Where a JSON reply carries its text, in order of preference (SSE chunks may also use ``text``/``delta``)."""
SESSION_PREFIX = "eval-pipeline-rollout-"


class ServiceReplyError(PermanentError):
    """The service answered, but with an error (an SSE error event, a function error): an error row, no retry."""


@dataclass(frozen=True)
class ServiceReply:
    """A parsed reply: the agent's text and, when the service reports them, its reward and whether it is done."""

    text: str
    reward: float | None = None
    done: bool | None = None


@dataclass(frozen=True)
class Exchange:
    """One successful call's raw answer: the body bytes and its content type."""

    body: bytes
    content_type: str = "application/json"


def session_id_for(rollout_id: str) -> str:
    """The service session of a rollout: the same id on every turn, derived from the rollout id alone (so a rollout
    that is re-run after a kill talks to the same, reproducible session id), 86 characters (AgentCore wants 33–256)."""
    return SESSION_PREFIX + hashlib.sha256(rollout_id.encode()).hexdigest()


def new_messages(conversation: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The user-side messages (user and tool) after the agent's last reply; system messages are the service's own."""
    last = max((i for i, message in enumerate(conversation) if message.role == "assistant"), default=-1)
    return [m for m in conversation[last + 1:] if m.role in ("user", "tool")]


def build_payload(conversation: Sequence[ChatMessage], task: AgentTask, session_id: str, turn: int,
                  model: str | None = None) -> dict[str, Any]:
    """The request of one turn (see the module docstring); ``model``: the suite's model identifier, for a service
    that serves several (base and fine-tuned) behind one endpoint."""
    prompt = "\n\n".join(m.text for m in new_messages(conversation))
    payload = {"prompt": prompt, "task_id": task.task_id, "session_id": session_id, "turn": turn,
               "task": dict(task.data)}
    return payload if model is None else {**payload, "model": model}


def parse_reply(body: bytes, content_type: str | None) -> ServiceReply:
    """The reply of a JSON, plain-text or SSE body; ServiceReplyError for an in-stream error event."""
    text = body.decode("utf-8", errors="replace")
    if (content_type or "").split(";")[0].strip().lower() == "text/event-stream" or _looks_like_sse(text):
        return _parse_sse(text)
    try:
        value = json.loads(text)
    except ValueError:
        return ServiceReply(text=text)
    return _from_value(value)


def _looks_like_sse(text: str) -> bool:
    return text.lstrip().startswith("data:")


def _parse_sse(text: str) -> ServiceReply:
    pieces: list[str] = []
    reward: float | None = None
    done: bool | None = None
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue  # blank separators, comments (":"), event:/id: lines
        data = line[5:].removeprefix(" ")
        try:
            value = json.loads(data)
        except ValueError:
            pieces.append(data)
            continue
        if isinstance(value, Mapping) and value.get("error") is not None:
            detail = value.get("error_type") or value.get("message") or ""
            raise ServiceReplyError(f"error event in the reply stream: {value['error']}"
                                    + (f" ({detail})" if detail else ""))
        chunk = _from_value(value, chunk_keys=True)
        pieces.append(chunk.text)
        reward = chunk.reward if chunk.reward is not None else reward
        done = chunk.done if chunk.done is not None else done
    return ServiceReply(text="".join(pieces), reward=reward, done=done)


def _from_value(value: Any, *, chunk_keys: bool = False) -> ServiceReply:
    if isinstance(value, str):
        return ServiceReply(text=value)
    if not isinstance(value, Mapping):
        return ServiceReply(text="" if value is None else json.dumps(value))
    if isinstance(value.get("body"), str) and not any(key in value for key in TEXT_KEYS):
        inner = value["body"]  # an API-Gateway-style proxy answer {"statusCode", "body": "<json or text>"}
        return parse_reply(inner.encode(), None)
    keys = TEXT_KEYS + (("text", "delta", "content") if chunk_keys else ())
    found = next((value[key] for key in keys if key in value), None)
    text = found if isinstance(found, str) else ("" if found is None else json.dumps(found))
    if found is None and not chunk_keys and not {"reward", "done"} & value.keys():
        text = json.dumps(value)  # an unknown shape: keep it whole rather than lose it
    return ServiceReply(text=text, reward=_number(value.get("reward")), done=_flag(value.get("done")))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


Sleep = Callable[[float], None]
Clock = Callable[[], float]


def with_retries(call: Callable[[], Exchange], *, policy: RetryPolicy, where: str, sleep: Sleep,
                 rng: random.Random, classify: Callable[[Exception], Exception]) -> Exchange:
    """``call`` until it succeeds; throttling and 5xx (TransientError after ``classify``) back off and retry, up to
    ``policy.max_attempts`` calls in all; anything else raises PermanentError at once."""
    for attempt in range(policy.max_attempts):
        try:
            return call()
        except PermanentError:
            raise
        except Exception as exc:  # classified below: transient ones retry, the rest are permanent
            error = exc if isinstance(exc, TransientError) else classify(exc)
            if not isinstance(error, TransientError):
                raise error if isinstance(error, PermanentError) else PermanentError(
                    f"{where}: {type(exc).__name__}: {exc}") from exc
            if attempt + 1 == policy.max_attempts:
                raise PermanentError(f"{where}: gave up after {attempt + 1} attempts: {error}") from exc
            sleep(policy.delay_s(attempt, error.retry_after_s, rng))
    raise AssertionError("unreachable: max_attempts must be at least 1")


class ServiceSettings(Protocol):
    """What every agent service's settings give: where it is, how long a call may take, how often to try."""

    region: str | None
    timeout_s: float
    max_attempts: int


class ServiceAgent(ABC):
    """An agent that is a remote service: one episode at a time per instance (build one per concurrent rollout).
    Subclasses implement one call (``invoke``) and, optionally, closing the session (``close_session``)."""

    service = "service"

    def __init__(self, settings: ServiceSettings, *, retry: RetryPolicy | None = None, sleep: Sleep = time.sleep,
                 clock: Clock = time.perf_counter, seed: int = 0, model: str | None = None) -> None:
        self.settings, self.model = settings, model
        self.retry = retry or RetryPolicy(max_attempts=settings.max_attempts, base_delay_s=1.0, max_delay_s=30.0)
        self.sleep, self.clock = sleep, clock
        self._rng = random.Random(seed)
        self.task: AgentTask | None = None
        self.session_id: str | None = None
        self.turn = 0

    @property
    def client(self) -> Any:
        """The boto3 client of the service, shared by every agent of one region and timeout."""
        return shared_client(self.service, region=self.settings.region, timeout_s=self.settings.timeout_s)

    def start(self, task: AgentTask, rollout_id: str) -> None:
        self.task, self.session_id, self.turn = task, session_id_for(rollout_id), 0

    def act(self, conversation: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AgentTurn:
        """One turn: send the new user-side messages, return the reply (or the error that ended the turn)."""
        if self.task is None or self.session_id is None:
            raise RuntimeError(f"{type(self).__name__}.act before start")
        self.turn += 1
        payload = json.dumps(build_payload(conversation, self.task, self.session_id, self.turn, self.model)).encode()
        started = self.clock()
        try:
            exchange = with_retries(lambda: self.invoke(payload), policy=self.retry, where=self.where(),
                                    sleep=self.sleep, rng=self._rng, classify=self.classify)
            reply = parse_reply(exchange.body, exchange.content_type)
        except PermanentError as exc:
            return AgentTurn(message=None, latency_s=self.clock() - started, error=str(exc))
        return AgentTurn(message=ChatMessage(role="assistant", content=reply.text),
                         latency_s=self.clock() - started, reward=reply.reward, done=reply.done)

    def finish(self) -> None:
        """Close the service session (best effort: a failure is logged, never raised), then forget the episode."""
        if self.session_id is not None and self.turn > 0:
            try:
                self.close_session()
            except Exception as exc:  # closing is a courtesy; the rollout's result is already decided
                log.warning("%s: could not close session %s: %s", self.where(), self.session_id, exc)
        self.task, self.session_id, self.turn = None, None, 0

    @abstractmethod
    def where(self) -> str:
        """The service and target, for messages."""

    @abstractmethod
    def invoke(self, payload: bytes) -> Exchange:
        """One call; raises (botocore errors are classified by ``classify``) on failure."""

    def classify(self, exc: Exception) -> Exception:
        from eval_pipeline.inference.aws import classify_aws_error

        return classify_aws_error(exc, self.where())

    def close_session(self) -> None:
        return None


class ServiceKind(ABC):
    """An environment-registry entry for an agent service: it validates the suite's settings when the suite loads,
    builds one agent per rollout and names the rows. Subclasses give ``validate``, their settings and agent types,
    and which setting names the target (``arn``, ``function``)."""

    name: str
    provides = "agent"
    """An agent service the suite's task is put to (not an environment our model acts in)."""
    settings_type: type
    agent_type: type[ServiceAgent]
    target_setting: str

    @abstractmethod
    def validate(self, config: Any, file: str | None = None, *, root: Any = None,
                 field: str = "environment") -> Any:
        """The settings, or EvalInputError naming the file and field."""

    def settings(self, config: Any) -> Any:
        return config if isinstance(config, self.settings_type) else self.validate(config)

    def build(self, config: Any, *, root: Any = None, **hooks: Any) -> ServiceAgent:
        """An agent for one rollout at a time (``hooks``: ``sleep``, ``clock``, ``retry``, ``seed``, ``model``)."""
        return self.agent_type(self.settings(config), **hooks)

    def label(self, config: Any) -> str:
        """How rows name the agent: ``<kind>:<target>``."""
        return f"{self.name}:{getattr(self.settings(config), self.target_setting)}"


@dataclass(frozen=True)
class ConfigReader:
    """A service agent's settings read from a suite's ``environment`` (a mapping, an ``EnvironmentSpec``-like
    object, or a bare string for the main setting), with errors naming the file and ``<field>.<key>``."""

    values: Mapping[str, Any]
    file: str | None
    field: str

    @classmethod
    def of(cls, config: Any, main_key: str, allowed: set[str], file: str | None, field: str) -> ConfigReader:
        """Unset (None) values are dropped; ``options`` are merged in; keys outside ``allowed`` are an error."""
        if isinstance(config, str):
            config = {main_key: config}
        elif hasattr(config, "model_dump"):
            config = config.model_dump()
        if not isinstance(config, Mapping):
            raise EvalInputError(f"expected a mapping or a string, got {type(config).__name__}", file=file,
                                 field=field)
        values = {key: value for key, value in config.items() if value is not None and key != "options"}
        options = config.get("options") or {}
        if not isinstance(options, Mapping):
            raise EvalInputError("expected a mapping", file=file, field=f"{field}.options")
        values.update(options)
        unknown = sorted(set(values) - allowed - {"kind", "type"})
        if unknown:
            where = f"{field}.options" if unknown[0] in options else field
            raise EvalInputError(f"unknown setting(s) {', '.join(unknown)} for this kind; known: "
                                 f"{', '.join(sorted(allowed))}", file=file, field=f"{where}.{unknown[0]}")
        return cls(values, file, field)

    def error(self, key: str, message: str) -> EvalInputError:
        return EvalInputError(message, file=self.file, field=f"{self.field}.{key}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any, *, positive: bool = False) -> Any:
        """One optional setting, type-checked (a bool is not a number here)."""
        value = self.values.get(key)
        if value is None:
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self.error(key, f"expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
        if positive and value <= 0:
            raise self.error(key, f"must be positive, got {value!r}")
        return value


def shared_client(service: str, *, region: str | None, timeout_s: float, n_concurrent: int = 16) -> Any:
    """A boto3 client (botocore's retries off; ours run), built once per service, region, timeout and endpoint and
    shared by every agent instance (a client costs ~0.7 s of CPU to build; boto3 clients are thread-safe)."""
    from eval_pipeline.inference.aws import aws_client

    endpoint_var = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    key = (service, region, timeout_s, os.environ.get(endpoint_var), os.environ.get("AWS_ENDPOINT_URL"),
           os.environ.get("AWS_ACCESS_KEY_ID"))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = aws_client(service, region=region, timeout_s=timeout_s, n_concurrent=n_concurrent)
        return _CLIENTS[key]


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
