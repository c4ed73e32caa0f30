"""The vllm backend: a server started for the run, used through the OpenAI protocol, stopped at the end.

vLLM itself needs a CUDA machine, so its server is played by a stand-in module at the same import path
(``tests/fakes/vllm_standin``) that takes the same flags and speaks the same wire protocol."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.execution import run_suite
from eval_pipeline.inference.backends import build_remote_sampler
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.managed_server import ManagedServer, ServerStartError, free_port
from eval_pipeline.inference.vllm import vllm_command
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.spec import ModelSpec
from tests.test_remote_backends import suite_file

REPO_ROOT = Path(__file__).resolve().parents[1]
STANDIN = REPO_ROOT / "tests" / "fakes" / "vllm_standin"


@pytest.fixture
def vllm_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setenv("PYTHONPATH", f"{STANDIN}:{REPO_ROOT}")


def server_logs() -> list[Path]:
    return sorted((paths.home() / "logs").glob("vllm-*.log"))


def test_vllm_suite_starts_serves_and_stops_its_server(eval_home: Path, vllm_standin: None) -> None:
    path = suite_file(eval_home.parent / "p", "  - {name: served, backend: vllm, model: org/tiny-chat, "
                      "n_concurrent: 4, server_args: [--max-model-len, '2048']}")
    result = run_suite(load_suite(path), local_instance())
    assert result.success, result.models[0].error
    generations = pd.read_parquet(result.models[0].outputs["generations"])
    assert len(generations) == 12 and generations["error"].isna().all() and (generations["tokens_out"] > 0).all()
    [log] = server_logs()
    assert "--model org/tiny-chat --served-model-name org/tiny-chat" in log.read_text()
    assert "--max-model-len 2048" in log.read_text()

    again = run_suite(load_suite(path), local_instance())  # all cached: no server is started
    assert again.models[0].generation["cached"] == 12 and len(server_logs()) == 1


def test_server_is_stopped_after_the_requests(eval_home: Path, vllm_standin: None) -> None:
    sampler = build_remote_sampler(ModelSpec(name="m", backend="vllm", model="tiny"))
    sampler.preflight()
    [completion] = sampler.generate([GenerationRequest("s", 0, ({"role": "user", "content": "hi"},))],
                                    GenerationParams(max_tokens=4))
    assert completion.error is None and completion.output
    assert sampler._server is None  # stopped, and the port is free again
    port = int(sampler.base_url.split(":")[2].split("/")[0])
    assert not ManagedServer(["true"], health_url=f"http://127.0.0.1:{port}/health", log_path=Path()).healthy()


def test_missing_vllm_is_a_clear_error_before_any_work(eval_home: Path) -> None:
    path = suite_file(eval_home.parent / "p", "  - {name: served, backend: vllm, model: org/tiny-chat}")
    with pytest.raises(EvalInputError, match=r"needs vLLM(.|\n)*backend 'openai'"):  # the CLI exits 2 with it
        run_suite(load_suite(path), local_instance())


def test_a_server_that_dies_at_start_reports_its_log(tmp_path: Path, vllm_standin: None) -> None:
    port = free_port()
    server = ManagedServer(vllm_command("broken", port, ["--fail"]), health_url=f"http://127.0.0.1:{port}/health",
                           log_path=tmp_path / "server.log", startup_timeout_s=60)
    with pytest.raises(ServerStartError, match=r"exited with status 1(.|\n)*cannot load model broken"):
        server.start()


def test_a_server_that_never_gets_healthy_is_stopped(tmp_path: Path) -> None:
    server = ManagedServer(["sleep", "60"], health_url=f"http://127.0.0.1:{free_port()}/health",
                           log_path=tmp_path / "server.log", startup_timeout_s=1.0, poll_s=0.1)
    with pytest.raises(ServerStartError, match="not healthy"):
        server.start()
    assert server.process is None


def test_vllm_model_is_required() -> None:
    with pytest.raises(ValueError, match="a vllm model needs 'model'"):
        ModelSpec(name="m", backend="vllm")
    with pytest.raises(EvalInputError):
        build_remote_sampler(ModelSpec(name="m", backend="vllm", model="x")).preflight()


def test_the_server_dies_with_a_killed_run(tmp_path: Path, vllm_standin: None) -> None:
    script = ("import sys, time\nfrom pathlib import Path\n"
              "from eval_pipeline.inference.managed_server import ManagedServer, free_port\n"
              "from eval_pipeline.inference.vllm import vllm_command\n"
              "port = free_port()\n"
              f"server = ManagedServer(vllm_command('m', port), health_url=f'http://127.0.0.1:{{port}}/health', "
              f"log_path=Path({str(tmp_path / 'log')!r})).start()\n"
              "print(server.process.pid, flush=True)\ntime.sleep(120)\n")
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    server_pid = int(run.stdout.readline())
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(server_pid):
        time.sleep(0.1)
    assert not _alive(server_pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())
