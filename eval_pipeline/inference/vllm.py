"""The ``vllm`` backend: starts vLLM's OpenAI-compatible server for the model, runs the requests through it with the
``openai`` machinery (concurrency, retries, usage), and stops it when they are done."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import Backend, SpecKey
from eval_pipeline.inference.base import HostedForOneStream
from eval_pipeline.inference.managed_server import ManagedServer, free_port
from eval_pipeline.inference.model_files import registry_uri, resolve_model_files
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths
from eval_pipeline.inference.openai_compat import OpenAISampler

HOST = "127.0.0.1"


def vllm_command(model: str, port: int, server_args: Sequence[str] = (), python: str = sys.executable,
                 files: str | None = None) -> list[str]:
    """The command line that serves ``model`` on ``port`` (extra vLLM flags, e.g. ``--tensor-parallel-size 2``,
    come from ``server_args``), loaded from ``files`` (its local copy) when given."""
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", files or model, "--served-model-name", model,
            "--host", HOST, "--port", str(port), *server_args]


class VllmSampler(HostedForOneStream, OpenAISampler):
    backend = "vllm"

    def __init__(self, model: str, *, server_args: Sequence[str] = (), startup_timeout_s: float = 900.0,
                 tracking_uri: str | None = None, **options: Any) -> None:
        super().__init__("", model, **options)
        self.model_path = resolve_model_files(model, tracking_uri=tracking_uri)  # an s3:// or models:/ URI fetched
        self.server_args = tuple(server_args)
        self.startup_timeout_s = startup_timeout_s
        self._server: ManagedServer | None = None

    def identity(self) -> dict[str, Any]:
        """Model as given, a fingerprint of its files when it is a local folder (retrained weights at the same
        path are another model), and the server's flags."""
        from eval_pipeline.inference.local import model_fingerprint

        return {"backend": self.backend, "model": self.model, "fingerprint": model_fingerprint(self.model_path),
                "server_args": list(self.server_args)}

    def preflight(self) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise EvalInputError(f"model {self.model}: backend 'vllm' needs vLLM in this environment "
                                 "(pip install vllm, on a machine with a supported GPU); or serve the model yourself "
                                 "and use backend 'openai' with its base_url", field="backend")

    def prepare(self) -> None:
        if self._server is None:
            port = free_port(HOST)
            server = ManagedServer(vllm_command(self.model, port, self.server_args, files=self.model_path),
                                   health_url=f"http://{HOST}:{port}/health",
                                   log_path=paths.home() / "logs" / f"vllm-{port}.log",
                                   startup_timeout_s=self.startup_timeout_s)
            self._server = server.start()
            self.base_url = f"http://{HOST}:{port}/v1"
        super().prepare()

    def close(self) -> None:
        """Stop the server (the next ``prepare`` starts a new one)."""
        if self._server is not None:
            self._server.stop()
            self._server = None


def _build_sampler(spec: ModelSpec, suite: SuitePaths | None, samples: object = None) -> VllmSampler:
    from eval_pipeline.inference.backend_options import model_location, remote_options

    return VllmSampler(model_location(spec, suite), server_args=spec.server_args, tracking_uri=registry_uri(suite),
                       startup_timeout_s=spec.server_startup_timeout_s, **remote_options(spec))


BACKEND = Backend(
    name="vllm", build=_build_sampler, remote=True, tools=True, model_files=True,
    needs=(SpecKey("model", "a local model directory or a Hugging Face id for vLLM to serve"),),
    temperature=(0.0, None),  # vLLM's sampling parameters: any temperature >= 0
)
"""A vLLM server this pipeline starts and stops, as ``backend_registry`` finds it."""
