"""Real Dagster processes for tests: ``dagster-webserver`` and ``dagster-daemon`` on 127.0.0.1, and a GraphQL client.

``live_dagster(...)`` creates the instance's storage, starts both (each in its own process group, cwd = the
repository root, state in temporary folders), waits until the webserver answers and the code location has loaded,
yields a ``LiveDagster`` handle, and always stops both groups (SIGTERM, then SIGKILL). The processes' output goes
to log files whose tails are printed (and put into the error message) when something fails. Every request goes
to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import requests

from eval_pipeline.instance import DAGSTER_YAML

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
POLL_S = 0.5
LOG_TAIL_LINES = 60
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
# Variables of the calling shell that must not leak into the deployment (state, tracking, proxies).
_DROPPED_ENV_PREFIXES = ("DAGSTER_", "EVAL_PIPELINE_", "MLFLOW_")
_DROPPED_ENV = frozenset({"http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"})

T = TypeVar("T")


class LiveDagsterError(AssertionError):
    """A live deployment did not do what a test waited for; the message carries the evidence."""


# --- GraphQL documents (checked against dagster_graphql 1.13's schema) -----------------------------------------

WORKSPACE_QUERY = """
query LiveWorkspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message stack }
  }
}
"""

ADD_DYNAMIC_PARTITION_MUTATION = """
mutation LiveAddDynamicPartition($repositorySelector: RepositorySelector!, $partitionsDefName: String!,
                                 $partitionKey: String!) {
  addDynamicPartition(repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName,
                      partitionKey: $partitionKey) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionsDefName partitionKey }
    ... on DuplicateDynamicPartitionError { partitionsDefName partitionName }
    ... on UnauthorizedError { message }
    ... on PythonError { message stack }
  }
}
"""

PARTITION_KEYS_QUERY = """
query LivePartitionKeys($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { partitionKeysOrError { partitionKeys } }
    ... on PipelineNotFoundError { message }
    ... on PythonError { message stack }
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation LiveLaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message path reason } }
    ... on Error { message }
  }
}
"""

RUN_FIELDS = """
  runId
  jobName
  status
  tags { key value }
"""

RUN_QUERY = f"""
query LiveRun($runId: ID!) {{
  runOrError(runId: $runId) {{
    __typename
    ... on Run {{ {RUN_FIELDS} }}
    ... on RunNotFoundError {{ message }}
    ... on PythonError {{ message stack }}
  }}
}}
"""

RUNS_QUERY = f"""
query LiveRuns($filter: RunsFilter!) {{
  runsOrError(filter: $filter) {{
    __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }}
    ... on Error {{ message }}
  }}
}}
"""

RUN_LOGS_QUERY = """
query LiveRunLogs($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ErrorEvent { error { message stack causes { message stack } } }
      }
    }
    ... on Error { message }
  }
}
"""

LAUNCH_BACKFILL_MUTATION = """
mutation LiveLaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message partitionKeys }
    ... on RunConfigValidationInvalid { errors { message path reason } }
    ... on Error { message }
  }
}
"""

BACKFILL_QUERY = """
query LiveBackfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { id status partitionNames numPartitions error { message stack } }
    ... on Error { message }
  }
}
"""

SENSOR_TICKS_QUERY = """
query LiveSensorTicks($selector: SensorSelector!, $limit: Int) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      name
      sensorState {
        status
        ticks(limit: $limit) { status timestamp skipReason runIds runKeys error { message stack } }
      }
    }
    ... on Error { message }
  }
}
"""


# --- the client ------------------------------------------------------------------------------------------------


class GraphQLClient:
    """POSTs GraphQL documents to one webserver; proxies from the environment are never used."""

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self.url = f"{base_url}/graphql"
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.trust_env = False  # 127.0.0.1 only: no proxy, no netrc

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of the answer; GraphQL-level errors raise ``LiveDagsterError`` with the messages."""
        response = self._session.post(self.url, json={"query": query, "variables": dict(variables or {})},
                                      timeout=self.timeout_s)
        try:
            payload = response.json()
        except ValueError:
            raise LiveDagsterError(f"GraphQL answered HTTP {response.status_code}: {response.text[:2000]}") from None
        if payload.get("errors"):
            raise LiveDagsterError(f"GraphQL errors: {json.dumps(payload['errors'], indent=1)[:4000]}")
        return payload["data"]

    def close(self) -> None:
        self._session.close()


# --- processes -------------------------------------------------------------------------------------------------


@dataclass
class ManagedProcess:
    """One child process leading its own process group, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def stop_groups(processes: list[ManagedProcess], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to every group at once; SIGKILL to what is left after ``grace_s``; reaps the leaders (bounded)."""
    for process in processes:
        _signal_group(process.popen.pid, signal.SIGTERM)  # start_new_session: the leader's pid is the group id
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        for process in processes:
            process.popen.poll()
        if not any(_group_exists(p.popen.pid) for p in processes):
            break
        time.sleep(0.2)
    for process in processes:
        _signal_group(process.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=grace_s)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spawn(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> ManagedProcess:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(args, cwd=REPO_ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    return ManagedProcess(name, popen, log_path)


def _executable(name: str) -> str:
    """A console script of this interpreter's environment (``.venv/bin/<name>``)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise LiveDagsterError(f"{name} is not installed beside {sys.executable}")
    return str(path)


def initialize_instance(dagster_home: Path) -> None:
    """Creates the instance's SQLite schemas once, as ``dagster dev`` does before it starts its children.

    Otherwise the webserver and the daemon race to migrate a fresh ``DAGSTER_HOME`` and one of them can die
    with ``table alembic_version already exists``.
    """
    dg.DagsterInstance.from_config(str(dagster_home)).dispose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def deployment_env(dagster_home: Path, state_home: Path, suites_dir: Path, model_cache: Path) -> dict[str, str]:
    """This environment minus Dagster/pipeline/MLflow settings and proxies, plus the deployment's folders."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(_DROPPED_ENV_PREFIXES) and key not in _DROPPED_ENV}
    env.update({
        "DAGSTER_HOME": str(dagster_home),
        "EVAL_PIPELINE_HOME": str(state_home),
        "EVAL_PIPELINE_SUITES": str(suites_dir),
        "EVAL_PIPELINE_MODEL_CACHE": str(model_cache),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "NO_PROXY": f"{HOST},localhost",
        "no_proxy": f"{HOST},localhost",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


# --- the deployment handle -------------------------------------------------------------------------------------


class LiveDagster:
    """A running webserver + daemon over one ``DAGSTER_HOME``, driven through GraphQL."""

    def __init__(self, base_url: str, dagster_home: Path, state_home: Path,
                 processes: list[ManagedProcess]) -> None:
        self.base_url = base_url
        self.dagster_home = dagster_home
        self.state_home = state_home
        self.processes = processes
        self.graphql = GraphQLClient(base_url)
        self.location_name = ""
        self.repository_name = ""

    # -- startup

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Until ``/server_info`` answers and the code location has loaded (a load error fails at once)."""
        session = requests.Session()
        session.trust_env = False

        def server_info() -> dict[str, Any] | None:
            try:
                response = session.get(f"{self.base_url}/server_info", timeout=2)
            except requests.RequestException:
                return None
            return response.json() if response.ok else None

        try:
            self.wait_until(server_info, timeout_s, "the webserver to answer /server_info")
        finally:
            session.close()
        self.wait_until(self._loaded_repository, timeout_s, "the code location to load")

    def _loaded_repository(self) -> bool:
        workspace = self.graphql.execute(WORKSPACE_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise LiveDagsterError(f"workspace error: {workspace.get('message')}\n{workspace.get('stack')}")
        for entry in workspace["locationEntries"]:
            location = entry["locationOrLoadError"]
            if location is None or entry["loadStatus"] != "LOADED":
                return False
            if location["__typename"] == "PythonError":
                raise LiveDagsterError(f"code location {entry['name']} failed to load: {location['message']}\n"
                                       f"{''.join(location.get('stack') or [])}")
            self.location_name = location["name"]
            self.repository_name = location["repositories"][0]["name"]
            return True
        return False

    # -- waiting

    def wait_until(self, probe: Callable[[], T | None], timeout_s: float, what: str,
                   diagnostics: Callable[[], str] | None = None) -> T:
        """Polls ``probe`` until it returns something truthy; fails after ``timeout_s`` (or when a process dies)."""
        deadline = time.monotonic() + timeout_s
        while True:
            dead = [p for p in self.processes if not p.alive]
            if dead:
                names = ", ".join(f"{p.name} (exit {p.popen.returncode})" for p in dead)
                raise LiveDagsterError(f"while waiting for {what}: {names} exited\n{self.log_tails()}")
            result = probe()
            if result:
                return result
            if time.monotonic() >= deadline:
                extra = ""
                if diagnostics is not None:
                    try:
                        extra = f"\n{diagnostics()}"
                    except Exception as exc:
                        extra = f"\n(diagnostics failed: {exc!r})"
                raise LiveDagsterError(f"timed out after {timeout_s:.0f}s waiting for {what}{extra}\n"
                                       f"{self.log_tails()}")
            time.sleep(POLL_S)

    def log_tails(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of each process's log, for failure messages."""
        return "\n".join(f"----- {p.name} ({p.log_path}) -----\n{p.tail(lines)}" for p in self.processes)

    # -- selectors

    @property
    def repository_selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location_name, "repositoryName": self.repository_name}

    def job_selector(self, job: str) -> dict[str, str]:
        return {**self.repository_selector, "pipelineName": job}

    # -- partitions

    def add_dynamic_partition(self, partitions_def: str, key: str) -> str:
        """Adds a key to a dynamic partitions definition; returns the answer's type (a duplicate is fine)."""
        result = self.graphql.execute(ADD_DYNAMIC_PARTITION_MUTATION, {
            "repositorySelector": self.repository_selector, "partitionsDefName": partitions_def,
            "partitionKey": key})["addDynamicPartition"]
        if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise LiveDagsterError(f"addDynamicPartition({partitions_def}, {key}) failed: {result}")
        return result["__typename"]

    def partition_keys(self, job: str) -> list[str]:
        result = self.graphql.execute(PARTITION_KEYS_QUERY, {"selector": self.job_selector(job)})["pipelineOrError"]
        if result["__typename"] != "Pipeline":
            raise LiveDagsterError(f"job {job}: {result}")
        return list(result["partitionKeysOrError"]["partitionKeys"])

    # -- runs

    def launch_run(self, job: str, *, partition: str | None = None, run_config: Mapping[str, Any] | None = None,
                   tags: Mapping[str, str] | None = None) -> str:
        """Launches (queues) one run of a job; returns its run id."""
        all_tags = dict(tags or {})
        if partition is not None:
            all_tags["dagster/partition"] = partition
        params = {
            "selector": {**self.repository_selector, "jobName": job},
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        }
        result = self.graphql.execute(LAUNCH_RUN_MUTATION, {"executionParams": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise LiveDagsterError(f"launchRun({job}) failed: {json.dumps(result, indent=1)}")
        return str(result["run"]["runId"])

    def run(self, run_id: str) -> dict[str, Any]:
        result = self.graphql.execute(RUN_QUERY, {"runId": run_id})["runOrError"]
        if result["__typename"] != "Run":
            raise LiveDagsterError(f"run {run_id}: {result}")
        return _with_tag_dict(result)

    def runs(self, *, job: str | None = None, tags: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Runs matching a job name and tags (newest first)."""
        run_filter: dict[str, Any] = {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        if job is not None:
            run_filter["pipelineName"] = job
        result = self.graphql.execute(RUNS_QUERY, {"filter": run_filter})["runsOrError"]
        if result["__typename"] != "Runs":
            raise LiveDagsterError(f"runs query failed: {result}")
        return [_with_tag_dict(run) for run in result["results"]]

    def run_logs(self, run_id: str, limit_chars: int = 12000) -> str:
        """The run's event log as text (messages and error stacks), its end kept when long."""
        lines: list[str] = []
        cursor: str | None = None
        for _ in range(50):
            result = self.graphql.execute(RUN_LOGS_QUERY, {"runId": run_id, "afterCursor": cursor})["logsForRun"]
            if result["__typename"] != "EventConnection":
                return f"(no logs for {run_id}: {result})"
            for event in result["events"]:
                step = f"[{event['stepKey']}] " if event.get("stepKey") else ""
                lines.append(f"{event.get('level', '')} {step}{event['__typename']}: {event.get('message', '')}")
                error = event.get("error")
                while error:
                    lines.append(error["message"] + "".join(error.get("stack") or []))
                    error = (error.get("causes") or [None])[0]
            cursor = result["cursor"]
            if not result["hasMore"]:
                break
        text = "\n".join(lines)
        return text if len(text) <= limit_chars else "…" + text[-limit_chars:]

    def wait_for_run(self, run_id: str, timeout_s: float) -> dict[str, Any]:
        """Polls the run until it ends; anything but SUCCESS fails with the run's logs."""
        def finished() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in TERMINAL_STATUSES else None

        run = self.wait_until(finished, timeout_s, f"run {run_id} to finish",
                              diagnostics=lambda: f"status {self.run(run_id)['status']}\n{self.run_logs(run_id)}")
        if run["status"] != "SUCCESS":
            raise LiveDagsterError(f"run {run_id} ({run['jobName']}, tags {run['tags']}) ended {run['status']}:\n"
                                   f"{self.run_logs(run_id)}\n{self.log_tails()}")
        return run

    # -- backfills and sensors

    def launch_backfill(self, job: str, partitions: list[str]) -> str:
        """A job backfill over the job's partition set (``<job>_partition_set``); returns the backfill id."""
        params = {
            "selector": {"partitionSetName": f"{job}_partition_set", "repositorySelector": self.repository_selector},
            "partitionNames": partitions,
        }
        result = self.graphql.execute(LAUNCH_BACKFILL_MUTATION, {"backfillParams": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise LiveDagsterError(f"launchPartitionBackfill({job}, {partitions}) failed: {json.dumps(result)}")
        return str(result["backfillId"])

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        result = self.graphql.execute(BACKFILL_QUERY, {"backfillId": backfill_id})["partitionBackfillOrError"]
        if result["__typename"] != "PartitionBackfill":
            raise LiveDagsterError(f"backfill {backfill_id}: {result}")
        return result

    def sensor_ticks(self, sensor: str, limit: int = 5) -> list[dict[str, Any]]:
        """The sensor's latest ticks (newest first) as the daemon recorded them."""
        selector = {**self.repository_selector, "sensorName": sensor}
        result = self.graphql.execute(SENSOR_TICKS_QUERY, {"selector": selector, "limit": limit})["sensorOrError"]
        if result["__typename"] != "Sensor":
            raise LiveDagsterError(f"sensor {sensor}: {result}")
        return list(result["sensorState"]["ticks"])


def _with_tag_dict(run: dict[str, Any]) -> dict[str, Any]:
    return {**run, "tags": {tag["key"]: tag["value"] for tag in run["tags"]}}


@contextlib.contextmanager
def live_dagster(workdir: Path, suites_dir: Path, *, model_cache: Path | None = None,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[LiveDagster]:
    """Starts ``dagster-webserver`` and ``dagster-daemon run`` over ``workspace.yaml``; always stops both.

    State lives under ``workdir``: ``dagster_home`` (with the project's dagster.yaml: telemetry off),
    ``state`` (``EVAL_PIPELINE_HOME``), ``logs`` (the processes' output) and, unless given, ``models``.
    """
    dagster_home, state_home, log_dir = workdir / "dagster_home", workdir / "state", workdir / "logs"
    model_cache = model_cache or workdir / "models"
    for folder in (dagster_home, state_home, log_dir, model_cache):
        folder.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    initialize_instance(dagster_home)
    env = deployment_env(dagster_home, state_home, suites_dir, model_cache)
    port = free_port()
    workspace = ["-w", str(REPO_ROOT / "workspace.yaml")]
    processes: list[ManagedProcess] = []
    live: LiveDagster | None = None
    try:
        processes.append(_spawn("webserver", [_executable("dagster-webserver"), *workspace, "-h", HOST,
                                              "-p", str(port)], env, log_dir))
        processes.append(_spawn("daemon", [_executable("dagster-daemon"), "run", *workspace], env, log_dir))
        live = LiveDagster(f"http://{HOST}:{port}", dagster_home, state_home, processes)
        live.wait_ready(startup_timeout_s)
        yield live
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            tails = "\n".join(f"----- {p.name} ({p.log_path}) -----\n{p.tail()}" for p in processes)
            print(f"live Dagster deployment failed ({exc!r}); process logs:\n{tails}", file=sys.stderr)
        raise
    finally:
        if live is not None:
            live.graphql.close()
        stop_groups(processes)
