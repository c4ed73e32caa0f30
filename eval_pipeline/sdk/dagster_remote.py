"""Submitting an execution to a running Dagster webserver through GraphQL, and following it there.

The webserver's code location must load the SDK's suites (``eval_pipeline.definitions`` reads
``paths.sdk_suites_dir()``) under the same ``EVAL_PIPELINE_HOME`` as this process: the suite file written here is
what it loads on reload, and the tables its runs write are what ``show_results`` reads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eval_pipeline.metrics.gates import GATE_METADATA_KEY, GateResult
from eval_pipeline.sdk.outputs import snapshot_tables, write_bedrock_outputs
from eval_pipeline.sdk.records import TERMINAL_STATES, locked, read_record, snapshot_dir, update_record
from eval_pipeline.sdk.status import RunInfo

log = logging.getLogger(__name__)
URL_ENV = "EVAL_PIPELINE_DAGSTER_URL"
TERMINAL_RUN_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")
WATCH_POLL_S = 2.0

WORKSPACE_QUERY = """
query SdkWorkspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name pipelines { name } } }
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

ADD_DYNAMIC_PARTITION_MUTATION = """
mutation SdkAddDynamicPartition($repositorySelector: RepositorySelector!, $partitionsDefName: String!,
                                $partitionKey: String!) {
  addDynamicPartition(repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName,
                      partitionKey: $partitionKey) {
    __typename
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

RUN_QUERY = """
query SdkRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId jobName status startTime endTime tags { key value } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""


RUN_OUTCOME_QUERY = """
query SdkRunOutcome($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on AssetCheckEvaluationEvent {
          evaluation { checkName success description metadataEntries { label ... on JsonMetadataEntry { jsonString } } }
        }
        ... on ExecutionStepFailureEvent { stepKey error { message cause { message cause { message } } } }
      }
    }
    ... on PythonError { message }
  }
}
"""


class DagsterRemoteError(RuntimeError):
    """The webserver could not do what an execution needs; the message says what and where."""


class DagsterRemote:
    """A GraphQL client for one webserver (``http://host:port[/prefix]``)."""

    def __init__(self, url: str, timeout_s: int = 60) -> None:
        from dagster_graphql import DagsterGraphQLClient

        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if not parsed.hostname:
            raise ValueError(f"not a Dagster webserver URL: {url!r} (expected e.g. http://127.0.0.1:3000)")
        self.url = url
        self.client = DagsterGraphQLClient(parsed.hostname, port_number=parsed.port,
                                           use_https=parsed.scheme == "https", timeout=timeout_s,
                                           path_prefix=parsed.path.rstrip("/"))

    def _execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.client._execute(query, variables)  # the public client has no generic query method

    def locations(self) -> list[dict[str, Any]]:
        result = self._execute(WORKSPACE_QUERY)["workspaceOrError"]
        if result["__typename"] != "Workspace":
            raise DagsterRemoteError(f"{self.url}: cannot read the workspace: {result.get('message')}")
        return result["locationEntries"]

    def reload_all(self) -> None:
        """Reload every code location, so a suite file written a moment ago is loaded."""
        for entry in self.locations():
            info = self.client.reload_repository_location(entry["name"])
            if info.status.value != "SUCCESS":
                log.warning("reloading code location %s at %s failed: %s", entry["name"], self.url, info.message)

    def find_job(self, job: str) -> tuple[str, str]:
        """(code location, repository) of the job; a clear error when the webserver does not have it."""
        problems = []
        for entry in self.locations():
            location = entry["locationOrLoadError"] or {}
            if location.get("__typename") != "RepositoryLocation":
                problems.append(f"code location {entry['name']!r} failed to load: {location.get('message')}")
                continue
            for repository in location["repositories"]:
                if any(p["name"] == job for p in repository["pipelines"]):
                    return entry["name"], repository["name"]
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise DagsterRemoteError(
            f"the Dagster webserver at {self.url} has no job {job!r} after reloading{detail}. Its code location "
            "must be eval_pipeline.definitions with the same EVAL_PIPELINE_HOME as this process, so that it loads "
            "the suites the SDK writes to <EVAL_PIPELINE_HOME>/sdk_suites")

    def add_partition(self, location: str, repository: str, partitions_def: str, key: str) -> None:
        selector = {"repositoryLocationName": location, "repositoryName": repository}
        result = self._execute(ADD_DYNAMIC_PARTITION_MUTATION, {
            "repositorySelector": selector, "partitionsDefName": partitions_def, "partitionKey": key})
        kind = result["addDynamicPartition"]["__typename"]
        if kind not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise DagsterRemoteError(f"{self.url}: adding partition {key!r} to {partitions_def} failed: "
                                     f"{result['addDynamicPartition'].get('message', kind)}")

    def launch(self, job: str, location: str, repository: str, tags: dict[str, str]) -> str:
        return self.client.submit_job_execution(job, repository_location_name=location,
                                                repository_name=repository, run_config={}, tags=tags)

    def run_info(self, run_id: str) -> RunInfo:
        run = self._execute(RUN_QUERY, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise DagsterRemoteError(f"{self.url}: run {run_id}: {run.get('message')}")
        tags = {t["key"]: t["value"] for t in run["tags"]}
        return RunInfo(run_id=run_id, job_name=run["jobName"], partition=tags.get("dagster/partition"),
                       status=run["status"], start_time=run["startTime"], end_time=run["endTime"])

    def status(self, run_id: str) -> str:
        return self.client.get_run_status(run_id).value

    def run_outcome(self, run_id: str) -> tuple[list[GateResult], str | None]:
        """The gate results of a run's asset checks, and its first step failure (``step: message``)."""
        gates: list[GateResult] = []
        failure, cursor = None, None
        while True:
            logs = self._execute(RUN_OUTCOME_QUERY, {"runId": run_id, "cursor": cursor})["logsForRun"]
            if logs["__typename"] != "EventConnection":
                raise DagsterRemoteError(f"{self.url}: events of run {run_id}: {logs.get('message')}")
            for event in logs["events"]:
                if event["__typename"] == "AssetCheckEvaluationEvent":
                    entries = {e["label"]: e.get("jsonString") for e in event["evaluation"]["metadataEntries"]}
                    if entries.get(GATE_METADATA_KEY):
                        gates.append(GateResult.from_dict(json.loads(entries[GATE_METADATA_KEY])))
                elif event["__typename"] == "ExecutionStepFailureEvent" and failure is None:
                    error = event["error"] or {}
                    while error.get("cause"):
                        error = error["cause"]
                    failure = f"{event['stepKey']}: {(error.get('message') or '').strip()}"
            if not logs["hasMore"]:
                return gates, failure
            cursor = logs["cursor"]

    def terminate(self, run_id: str) -> None:
        try:
            self.client.terminate_run(run_id)
        except Exception as exc:  # already finished, or the run launcher cannot terminate it
            log.info("terminating run %s: %s", run_id, exc)


def submit(record_path: Path, tags: dict[str, str]) -> None:
    """Reload the code location, add the model partitions, launch one ``<suite>_eval`` run per model."""
    record = read_record(record_path)
    remote = DagsterRemote(record["dagster_url"])
    suite = record["suite"]
    remote.reload_all()
    location, repository = remote.find_job(f"{suite}_eval")
    runs = {}
    for step in (s for s in record["steps"] if s["kind"] == "eval"):
        remote.add_partition(location, repository, f"{suite}_models", step["model"])
        runs[step["name"]] = remote.launch(step["job"], location, repository,
                                           {**tags, "dagster/partition": step["model"]})
    update_record(record_path, runs=runs, dagster_location=[location, repository])


def watch(record_path: Path) -> threading.Thread:
    """A daemon thread that advances the execution until it ends (``refresh()`` advances it too)."""
    def loop() -> None:
        while True:
            try:
                if advance(record_path) in TERMINAL_STATES:
                    return
            except Exception as exc:  # a webserver restart or a network blip: try again
                log.warning("following execution %s: %s", record_path.stem, exc)
            time.sleep(WATCH_POLL_S)

    thread = threading.Thread(target=loop, name=f"eval-watch-{record_path.stem}", daemon=True)
    thread.start()
    return thread


def advance(record_path: Path) -> str:
    """One step of the state machine, under the record's lock: launch the comparison once every model run has
    succeeded, and record the final state (writing the Bedrock-shaped outputs). Returns the state."""
    with locked(record_path) as record:
        if record["state"] in TERMINAL_STATES or not record.get("runs"):
            return record["state"]
        remote = DagsterRemote(record["dagster_url"])
        statuses = {step: remote.status(run_id) for step, run_id in record["runs"].items()}
        if any(status not in TERMINAL_RUN_STATUSES for status in statuses.values()):
            return record["state"]
        failed = {step: f"run {record['runs'][step]} ended {status}" for step, status in statuses.items()
                  if status != "SUCCESS"}
        if any(s["kind"] == "eval" for s in record["steps"]) and "step_gates" not in record:
            _record_outcomes(remote, record, failed)
        compare = next((s for s in record["steps"] if s["kind"] == "compare"), None)
        if compare is not None and not failed and not record.get("stop_requested") and compare["name"] not in \
                record["runs"]:
            location, repository = record["dagster_location"]
            record["runs"][compare["name"]] = remote.launch(compare["job"], location, repository, record["tags"])
            return record["state"]
        succeeded = [s["model"] for s in record["steps"] if s["kind"] == "eval" and s["name"] not in failed]
        record["bedrock_outputs_written"] = write_bedrock_outputs(record, succeeded)
        record["snapshot"] = snapshot_tables(record, snapshot_dir(record_path))
        record["final_runs"] = [asdict(remote.run_info(run_id)) for run_id in record["runs"].values()]
        record["step_errors"] = {**record.get("step_errors", {}), **failed}
        record["state"] = "Stopped" if record.get("stop_requested") else "Failed" if failed else "Succeeded"
        record["failure_reason"] = "; ".join(f"{k}: {v}" for k, v in failed.items()) if failed and \
            record["state"] == "Failed" else None
        record["finished_at"] = time.time()
        return record["state"]


def _record_outcomes(remote: DagsterRemote, record: dict[str, Any], failed: dict[str, str]) -> None:
    """Each eval run's gate results into the record, and why each failed run failed (a failed gate, else its first
    step failure) into ``failed``; best effort: without the run's events the bare status stays."""
    record["step_gates"] = {}
    for step in (s["name"] for s in record["steps"] if s["kind"] == "eval" and s["name"] in record["runs"]):
        try:
            gates, failure = remote.run_outcome(record["runs"][step])
        except Exception as exc:  # the reason is a courtesy; the status is what counts
            log.warning("reading the events of run %s: %s", record["runs"][step], exc)
            continue
        record["step_gates"][step] = [gate.as_dict() for gate in gates]
        reasons = [f"gate {gate.summary()}" for gate in gates if not gate.passed] or ([failure] if failure else [])
        if step in failed and reasons:
            failed[step] = f"{failed[step]}: {'; '.join(reasons)}"


def request_stop(record_path: Path) -> None:
    """Terminate the execution's runs that have not finished; the comparison is not launched."""
    record = update_record(record_path, stop_requested=True)
    remote = DagsterRemote(record["dagster_url"])
    for run_id in (record.get("runs") or {}).values():
        if remote.status(run_id) not in TERMINAL_RUN_STATUSES:
            remote.terminate(run_id)


def run_infos(record: dict[str, Any]) -> list[RunInfo]:
    """The runs' states: from the webserver, or as recorded when the execution ended (no webserver needed)."""
    if record.get("final_runs") is not None:
        return [RunInfo(**run) for run in record["final_runs"]]
    remote = DagsterRemote(record["dagster_url"])
    return [remote.run_info(run_id) for run_id in (record.get("runs") or {}).values()]
