"""``EvaluationExecution``: one started evaluation, found again by id from any process through its record."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.process_identity import process_alive
from eval_pipeline.sdk import dagster_remote, in_process
from eval_pipeline.sdk.records import (
    TERMINAL_STATES,
    all_records,
    execution_id_from,
    read_record,
    record_path,
    update_record,
)
from eval_pipeline.sdk.results import EvaluationResults, collect, render
from eval_pipeline.sdk.status import EvaluationStatus, derive_status
from eval_pipeline.stale_runs import fail_orphaned_runs


class EvaluationExecution:
    """A running or finished evaluation: ``status``, ``refresh()``, ``wait()``, ``stop()``, ``show_results()``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._record = read_record(path)
        self._status: EvaluationStatus | None = None

    # -- identity

    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def name(self) -> str:
        return self._record["id"]

    @property
    def arn(self) -> str:
        return self._record["arn"]

    @property
    def suite(self) -> str:
        return self._record["suite"]

    @property
    def record(self) -> dict[str, Any]:
        """The execution's record as last read (config, models, steps, state, output paths)."""
        return dict(self._record)

    @property
    def bedrock_outputs(self) -> dict[str, str]:
        """Model -> the Bedrock-shaped output JSONL written for it (once the execution has ended)."""
        return dict(self._record.get("bedrock_outputs_written") or {})

    # -- lookup

    @classmethod
    def get(cls, id: str | None = None, *, arn: str | None = None, region: str | None = None) -> EvaluationExecution:
        """The execution with this id (or ARN-like id); ``region`` is accepted for compatibility and ignored."""
        key = id or arn
        if not key:
            raise ValueError("give the execution's id (or arn)")
        path = record_path(execution_id_from(key))
        if not path.is_file():
            raise KeyError(f"no execution {key!r} under {path.parent}")
        return cls(path)

    @classmethod
    def list_all(cls, evaluator: str | None = None) -> Iterator[EvaluationExecution]:
        """Every recorded execution (of one evaluator kind when given), newest first."""
        for record in all_records():
            if evaluator is None or record.get("evaluator") == evaluator:
                yield cls(record_path(record["id"]))

    # -- status

    @property
    def status(self) -> EvaluationStatus:
        """The current status (re-read on each access)."""
        return self.refresh()._status  # type: ignore[return-value]

    def refresh(self) -> EvaluationExecution:
        """Re-read the record and the Dagster runs of this execution."""
        record = read_record(self._path)
        if record["mode"] == "webserver":
            if record["state"] not in TERMINAL_STATES:
                dagster_remote.advance(self._path)
                record = read_record(self._path)
            runs = dagster_remote.run_infos(record)
        else:
            if record["state"] not in TERMINAL_STATES and not _owner_alive(record):
                fail_orphaned_runs(in_process.local_dagster())  # its runs stay STARTED otherwise
                record = update_record(self._path, state="Failed", finished_at=time.time(),
                                       failure_reason=f"the process running it (pid {record['pid']} on "
                                                      f"{record['host']}) is gone")
            runs = in_process.run_infos(in_process.local_dagster(), self.id)
        self._record = record
        self._status = derive_status(record, runs)
        return self

    def wait(self, poll: float = 5, timeout: float = 3600) -> EvaluationStatus:
        """Block until the execution ends, printing progress as it changes; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            status = self.status
            line = status.progress()
            if line != last:
                print(line, flush=True)
                last = line
            if status.terminal:
                if status.failure_reason:
                    print(f"failure: {status.failure_reason}", flush=True)
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"execution {self.id} still {status.overall_status} after {timeout:g} s "
                                   f"({line})")
            time.sleep(max(0.05, min(poll, deadline - time.monotonic())))

    def stop(self) -> EvaluationStatus:
        """Ask the execution to stop; it ends ``Stopped`` (``wait()`` for that). Webserver mode terminates the
        runs; in-process, no further run starts and the run in progress is reported as canceling."""
        if self._record["mode"] == "webserver":
            dagster_remote.request_stop(self._path)
        else:
            in_process.request_stop(self._path, in_process.local_dagster())
        return self.status

    # -- results

    def results(self, limit: int = 10, offset: int = 0, show_explanations: bool = False) -> EvaluationResults:
        """The result tables (items, per-metric summary, comparison) without printing them."""
        self._record = read_record(self._path)
        return collect(self._record, limit=limit, offset=offset, show_explanations=show_explanations)

    def show_results(self, limit: int = 10, offset: int = 0, show_explanations: bool = False, *,
                     use_rich: bool | None = None) -> pd.DataFrame:
        """Print the items (prompt, responses, scores), the per-metric summary and the comparison; returns the items
        (``.attrs["summary"]`` and ``.attrs["comparison"]`` hold the other two tables, ``.attrs["judge_warnings"]``
        the degenerate-judge flags). ``use_rich``: None = rich when it is installed, else plain text."""
        results = self.results(limit=limit, offset=offset, show_explanations=show_explanations)
        state = self._record["state"]
        title = f"{self.id} ({state})" if state in TERMINAL_STATES else f"{self.id} (still {state}: partial)"
        render(results, title, offset, use_rich=use_rich)
        items = results.items
        items.attrs["summary"] = results.summary
        items.attrs["comparison"] = results.comparison
        items.attrs["judge_warnings"] = results.judge_warnings
        return items

    # -- display

    def __repr__(self) -> str:
        r = self._record
        return (f"EvaluationExecution(id={r['id']!r}, arn={r['arn']!r}, suite={r['suite']!r}, mode={r['mode']!r}, "
                f"state={r['state']!r}, models={[m['name'] for m in r['models']]!r})")

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        r = self._record
        yield "id", r["id"]
        yield "arn", r["arn"]
        yield "suite", r["suite"]
        yield "mode", r["mode"] if r["mode"] == "in_process" else f"webserver {r['dagster_url']}"
        yield "state", r["state"]
        yield "models", {m["name"]: m["model_identifier"] for m in r["models"]}
        yield "mlflow_experiment", r["mlflow_experiment"]
        yield "output_root", r["output_root"]


def _owner_alive(record: dict[str, Any]) -> bool:
    """Whether the process running an in-process execution still exists (unknown for another host: assume so)."""
    return record.get("host") != socket.gethostname() or process_alive(int(record["pid"]))
