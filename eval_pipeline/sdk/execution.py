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
from eval_pipeline.sdk.run_progress import RunProgress, graphql_pages, instance_pages
from eval_pipeline.sdk.status import EvaluationStatus, derive_status
from eval_pipeline.stale_runs import fail_orphaned_runs


class EvaluationExecution:
    """A running or finished evaluation: ``status``, ``refresh()``, ``wait()``, ``stop()``, ``show_results()``.

    An evaluator's ``evaluate()`` returns one; ``EvaluationExecution.get(id)`` finds it again from any process on
    this machine (its record lives in ``$EVAL_PIPELINE_HOME/executions/<id>.json``).

    Args:
        path: The execution's record file (use ``get(id)`` rather than building one by hand).

    Example:
        >>> execution = EvaluationExecution.get("llmaj-llm_as_judge-1a2b3c4d")
        >>> execution.status.overall_status
        'Succeeded'
        >>> execution.show_results(limit=5, show_explanations=True)
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._record = read_record(path)
        self._status: EvaluationStatus | None = None

    # -- identity

    @property
    def id(self) -> str:
        """The execution id, ``<llmaj|mtrl>-<suite>-<8 hex>``."""
        return self._record["id"]

    @property
    def name(self) -> str:
        """The seed's name for ``id``."""
        return self._record["id"]

    @property
    def arn(self) -> str:
        """An ARN-like id, ``arn:eval-pipeline:local:<kind>/execution/<id>`` (``get(arn=...)`` takes it)."""
        return self._record["arn"]

    @property
    def suite(self) -> str:
        """The name of the suite the evaluator wrote (its Dagster assets are ``<suite>/<stage>``)."""
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
        """The execution with this id or ARN, from any process on this machine.

        Args:
            id: The execution id (``"llmaj-llm_as_judge-1a2b3c4d"``) or its ARN.
            arn: The ARN instead (``execution.arn``), as the seed passes it.
            region: Accepted for the seed's signature and ignored.

        Returns:
            The ``EvaluationExecution``.

        Raises:
            KeyError: No execution with that id under ``$EVAL_PIPELINE_HOME/executions``.
            ValueError: Neither ``id`` nor ``arn`` given.
        """
        key = id or arn
        if not key:
            raise ValueError("give the execution's id (or arn)")
        path = record_path(execution_id_from(key))
        if not path.is_file():
            raise KeyError(f"no execution {key!r} under {path.parent}")
        return cls(path)

    @classmethod
    def list_all(cls, evaluator: str | None = None) -> Iterator[EvaluationExecution]:
        """Every recorded execution, newest first.

        Args:
            evaluator: Only this evaluator kind's (``"llm_as_judge"``, ``"multi_turn_rl"``). Default: None, all.

        Returns:
            An iterator of ``EvaluationExecution``.
        """
        for record in all_records():
            if evaluator is None or record.get("evaluator") == evaluator:
                yield cls(record_path(record["id"]))

    # -- status

    @property
    def status(self) -> EvaluationStatus:
        """The current status, re-read on each access: ``overall_status`` (Executing, Stopping, Succeeded, Failed,
        Stopped), ``step_details`` (one per model's run, then the comparison) and ``failure_reason``."""
        return self.refresh()._status  # type: ignore[return-value]

    def refresh(self) -> EvaluationExecution:
        """Re-read the record and the Dagster runs of this execution (an execution whose process died is marked
        Failed).

        Returns:
            This execution, for chaining (``execution.refresh().status``).
        """
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
        """Block until the execution ends, printing progress as it changes (at most a line per ``poll`` s): the
        steps done, and the running step's latest progress line (count, rate, time left; the run log's);
        TimeoutError after ``timeout`` s.

        Args:
            poll: Seconds between looks at the execution (``poll=30`` for a long one). Default: 5.
            timeout: Seconds to wait before giving up with ``TimeoutError`` (the execution goes on). Default: 3600.

        Returns:
            The final ``EvaluationStatus`` (``overall_status`` Succeeded, Failed or Stopped).

        Raises:
            TimeoutError: The execution had not ended after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        last, last_detail = "", ""
        follow = self._run_progress()
        while True:
            status = self.status
            line = status.progress()
            if line != last:
                print(line, flush=True)
                last = line
            detail = _running_progress(status, follow)
            if detail and detail != last_detail:
                print(f"  {detail}", flush=True)
                last_detail = detail
            if status.terminal:
                if status.failure_reason:
                    print(f"failure: {status.failure_reason}", flush=True)
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"execution {self.id} still {status.overall_status} after {timeout:g} s "
                                   f"({line})")
            time.sleep(max(0.05, min(poll, deadline - time.monotonic())))

    def _run_progress(self) -> RunProgress | None:
        """Follows the runs' progress lines (None when they cannot be read: no webserver any more)."""
        try:
            if self._record["mode"] == "webserver":
                remote = dagster_remote.DagsterRemote(self._record["dagster_url"])
                return RunProgress(graphql_pages(remote._execute))
            return RunProgress(instance_pages(in_process.local_dagster()))
        except Exception:  # progress is a courtesy: waiting goes on without it
            return None

    def stop(self) -> EvaluationStatus:
        """Ask the execution to stop; it ends ``Stopped`` (``wait()`` for that). Webserver mode terminates the
        runs; in-process, no further run starts and the run in progress is reported as canceling.

        Returns:
            The status right after the request (``Stopping`` while a run finishes).
        """
        if self._record["mode"] == "webserver":
            dagster_remote.request_stop(self._path)
        else:
            in_process.request_stop(self._path, in_process.local_dagster())
        return self.status

    # -- results

    def results(self, limit: int = 10, offset: int = 0, show_explanations: bool = False) -> EvaluationResults:
        """The result tables without printing them.

        Args:
            limit: How many dataset items (each with every model's row). Default: 10.
            offset: How many items to skip first, for paging (``offset=10`` is the second page). Default: 0.
            show_explanations: Add a ``<metric> explanation`` column per judge metric: the judge's reasoning,
                without its verdict line or the fences and labels around it. Default: False.

        Returns:
            ``EvaluationResults``: ``items``, ``summary`` (per model × metric: mean, 95% CI and its method, n,
            errors), ``comparison`` (against the base model; None without one), ``total_items``,
            ``judge_warnings``.
        """
        self._record = read_record(self._path)
        return collect(self._record, limit=limit, offset=offset, show_explanations=show_explanations)

    def show_results(self, limit: int = 10, offset: int = 0, show_explanations: bool = False, *,
                     use_rich: bool | None = None) -> pd.DataFrame:
        """Print the items (prompt, response, each metric's score, with the judge's explanation under it when asked),
        the per-metric summary (mean, 95% CI, n, errors), the comparison with the base model and any degenerate-judge
        warning. An execution still running shows what is there so far.

        Args:
            limit: How many dataset items to show (each with every model's row). Default: 10.
            offset: How many items to skip first, for paging. Default: 0.
            show_explanations: Show the judge's explanation under each score (fences, tags and labels removed,
                long text wrapped and cut at 600 characters; ``results()`` keeps it whole). Default: False.
            use_rich: True for rich tables, False for plain text. Default: None, rich when it is installed.

        Returns:
            The items as a ``pandas.DataFrame`` (``results().items``); ``.attrs["summary"]``,
            ``.attrs["comparison"]`` and ``.attrs["judge_warnings"]`` hold the other tables.
        """
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


def _running_progress(status: EvaluationStatus, follow: RunProgress | None) -> str | None:
    """The latest progress line of the step that is executing, if any has been logged."""
    running = [s for s in status.step_details if s.status == "Executing" and s.dagster_run_id]
    if follow is None or not running:
        return None
    try:
        return follow.latest(running[-1].dagster_run_id or "")
    except Exception:  # a hiccup reading the log: the next poll tries again
        return None


def _owner_alive(record: dict[str, Any]) -> bool:
    """Whether the process running an in-process execution still exists (unknown for another host: assume so)."""
    return record.get("host") != socket.gethostname() or process_alive(int(record["pid"]))
