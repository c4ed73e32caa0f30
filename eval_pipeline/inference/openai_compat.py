"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM, Ollama, TGI, OpenAI itself)."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import Backend, SpecKey
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths
from eval_pipeline.inference.openai_chat import chat_request, parse_chat_completion
from eval_pipeline.inference.remote import PermanentError, RemoteSampler, TransientError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class OpenAISampler(RemoteSampler):
    backend = "openai"

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key_env = api_key_env
        self._local = threading.local()

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "base_url": self.base_url}

    def preflight(self) -> None:
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise EvalInputError(f"the API key variable {self.api_key_env} is not set (model {self.model} at "
                                 f"{self.base_url})", field="api_key_env")

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            key = os.environ.get(self.api_key_env or DEFAULT_KEY_ENV)
            if key:
                session.headers["Authorization"] = f"Bearer {key}"
            self._local.session = session
        return session

    def call(self, request: GenerationRequest, params: GenerationParams) -> Completion:
        body = self.post("chat/completions", chat_request(request, params, self.model))
        completion = parse_chat_completion(body)
        if completion is None:
            raise PermanentError(f"{self.where}: response we cannot parse; body starts {json.dumps(body)[:200]!r}")
        return completion

    @property
    def where(self) -> str:
        return f"{self.base_url} model {self.model}"

    def post(self, route: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``<base_url>/<route>``; the JSON reply, or TransientError (timeouts, dropped
        connections, 429 with its Retry-After, 408, 5xx) / PermanentError (other 4xx, a body that is not JSON)."""
        import requests

        where = self.where
        try:
            response = self._session().post(f"{self.base_url}/{route}", json=body, timeout=self.timeout_s)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429:
            raise TransientError(f"{where}: throttled (HTTP 429)", throttled=True,
                                 retry_after_s=_seconds(response.headers.get("Retry-After")))
        if response.status_code >= 500 or response.status_code == 408:
            raise TransientError(f"{where}: HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise PermanentError(f"{where}: HTTP {response.status_code}: {_error_message(response)}")
        try:
            return response.json()
        except ValueError:
            raise PermanentError(f"{where}: response we cannot parse; body starts {response.text[:200]!r}") from None


def _error_message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _build_sampler(spec: ModelSpec, suite: SuitePaths | None, samples: object = None) -> OpenAISampler:
    from eval_pipeline.inference.backend_options import remote_options

    return OpenAISampler(spec.base_url or "", spec.model or "", api_key_env=spec.api_key_env, **remote_options(spec))


def _build_likelihood_scorer(spec: ModelSpec, suite: SuitePaths | None) -> Any:
    """An ``OpenAICompletionsScorer``: prompt log-probabilities from the server's completions API."""
    from eval_pipeline.inference.likelihood_openai import OpenAICompletionsScorer

    return OpenAICompletionsScorer(spec.base_url or "", spec.model or "", api_key_env=spec.api_key_env,
                                   n_concurrent=spec.n_concurrent, timeout_s=spec.timeout_s,
                                   max_attempts=spec.max_attempts, prefix=spec.likelihood_prefix)


BACKEND = Backend(
    name="openai", build=_build_sampler, likelihood=_build_likelihood_scorer, remote=True, tools=True,
    needs=(SpecKey("base_url", "the server's base URL, e.g. http://127.0.0.1:8000/v1"),
           SpecKey("model", "the name the server serves it under")),
    temperature=(0.0, 2.0),  # the chat-completions API
)
"""An OpenAI-compatible chat-completions server, as ``backend_registry`` finds it."""
