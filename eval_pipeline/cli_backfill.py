"""``eval-pipeline backfill``: submit a Dagster asset backfill of a suite's model (× shard) partitions.

The backfill is recorded in the instance (``$DAGSTER_HOME``, SQLite or PostgreSQL) and run by ``dagster-daemon``
(``eval-pipeline ui`` starts one) through the run queue. The command prints each backfill id; with ``--wait`` it
follows the backfill (asset partitions done/total, rate, time left) to its end. Exit codes: 0 submitted (or, with
``--wait``, completed successfully), 1 a backfill that failed or was canceled, or that Dagster refused, 2 bad input,
130 interrupted (the backfill goes on).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the module is imported to build the parser of every command: Dagster is loaded on use
    import dagster as dg

    from eval_pipeline.backfills import AggregationProgress, BackfillProgress, BackfillRequest

POLL_SECONDS = 2.0
QUIET_SECONDS = 30.0
"""With nothing new, a progress line at least this often."""


DESCRIPTION = """\
Submit a Dagster asset backfill of a suite's model (x shard) partitions.

The backfill is recorded in the instance ($DAGSTER_HOME, SQLite or PostgreSQL)
and run by dagster-daemon (eval-pipeline ui starts one) through the run queue.
The command prints each backfill id; with --wait it follows the backfill (asset
partitions done/total, rate, time left) to its end."""
EPILOG = """\
examples:
  eval-pipeline backfill --suite quickstart
  eval-pipeline backfill --suite evals/judged.yaml --models smollm2-135m,reference-answers --wait

exit codes: 0 submitted (or, with --wait, completed successfully), 1 a backfill
that failed or was canceled, or that Dagster refused, 2 bad input, 130
interrupted (the backfill goes on)"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``backfill`` on the top-level subparsers."""
    parser = commands.add_parser("backfill", help="backfill a suite's model (× shard) partitions with dagster-daemon",
                                 description=DESCRIPTION, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, help="a suite file (evals/x.yaml) or a suite name")
    parser.add_argument("--models", help="comma-separated model names (default: every model the suite declares)")
    parser.add_argument("--wait", action="store_true", help="follow the backfill to its end; exit 1 if it fails")
    parser.add_argument("--poll", type=float, default=POLL_SECONDS, help=argparse.SUPPRESS)
    parser.set_defaults(handler=_backfill)


def _backfill(args: argparse.Namespace) -> int:
    from eval_pipeline.backfills import (
        BackfillError,
        backfill_progress,
        daemon_running,
        submit_suite_backfills,
        workspace_context,
    )
    from eval_pipeline.instance import dagster_home_path, local_instance
    from eval_pipeline.suites import find_suite

    suite = find_suite(args.suite)
    models = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else None
    instance = local_instance()
    try:
        with workspace_context(instance) as context:
            submitted = submit_suite_backfills(instance, context, suite, models)
            for request, backfill_id in submitted:
                print(f"backfill {backfill_id}: suite {request.suite}, models {', '.join(request.models)} "
                      f"({request.backend}), {len(request.partition_keys)} partitions", flush=True)
            if not daemon_running(instance):
                print(f"note: no dagster-daemon is running on {dagster_home_path()}: the backfill waits for one "
                      "(`dagster-daemon run -w workspace.yaml`, or `eval-pipeline ui`)", file=sys.stderr, flush=True)
            if not args.wait:
                print("the daemon runs it: follow it in the UI (Overview › Backfills) or with --wait")
                return 0
            ids = [backfill_id for _request, backfill_id in submitted]
            finals = watch_backfills(ids, lambda backfill_id: backfill_progress(context, backfill_id),
                                     poll_s=args.poll)
            code = report_outcome(finals, lambda backfill_id: _failed_run_lines(instance, backfill_id))
            if code == 0:
                code = _follow_aggregation(instance, submitted, args.poll)
    except BackfillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


def _follow_aggregation(instance: dg.DagsterInstance, submitted: list[tuple[BackfillRequest, str]],
                        poll_s: float) -> int:
    """After the backfills: wait for what the suite's automation materializes from them (a sharded suite's
    metrics, one run per model); 1 if one of those runs failed."""
    from eval_pipeline.backfills import aggregation_progress, backfill_timestamp

    probes = []
    for request, backfill_id in submitted:
        if request.automated_keys:
            since = backfill_timestamp(instance, backfill_id)
            probes.append(lambda r=request, t=since: aggregation_progress(instance, r, t))
    return follow_aggregation(probes, poll_s=poll_s)


def follow_aggregation(probes: Sequence[Callable[[], AggregationProgress]], *, poll_s: float = POLL_SECONDS,
                       sleep: Callable[[float], None] = time.sleep, out: TextIO | None = None,
                       err: TextIO | None = None) -> int:
    """Poll each probe until its partitions are all materialized or failed, printing a line when it moves; 0 when
    all were materialized, else 1 (the failed ones listed)."""
    out, err = out or sys.stdout, err or sys.stderr
    code = 0
    for probe in probes:
        shown = None
        while True:
            progress = probe()
            line = (f"aggregation (the suite's automation sensor): {len(progress.done)}/{progress.total} model "
                    "partitions materialized")
            if line != shown:
                print(line, file=out, flush=True)
                shown = line
            if progress.finished:
                break
            sleep(poll_s)
        for failure in progress.failed:
            print(f"FAILED: aggregation {failure}", file=err)
            code = 1
    return code


def watch_backfills(ids: Sequence[str], fetch: Callable[[str], BackfillProgress], *, poll_s: float = POLL_SECONDS,
                    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                    out: TextIO | None = None) -> list[BackfillProgress]:
    """Poll each backfill until it ends, printing a progress line whenever its counts change (and every
    ``QUIET_SECONDS`` otherwise); returns the final progress of each."""
    from eval_pipeline.backfills import RateMeter

    out = out or sys.stdout
    meters = {backfill_id: RateMeter(clock) for backfill_id in ids}
    last: dict[str, tuple[tuple[int, ...], float]] = {}
    finals: dict[str, BackfillProgress] = {}
    while len(finals) < len(ids):
        for backfill_id in ids:
            if backfill_id in finals:
                continue
            progress = fetch(backfill_id)
            counts = (progress.done, progress.failed, progress.in_progress, hash(progress.status))
            seen = last.get(backfill_id)
            if seen is None or seen[0] != counts or clock() - seen[1] >= QUIET_SECONDS:
                print(meters[backfill_id].line(progress), file=out, flush=True)
                last[backfill_id] = (counts, clock())
            if progress.finished:
                finals[backfill_id] = progress
        if len(finals) < len(ids):
            sleep(poll_s)
    return [finals[backfill_id] for backfill_id in ids]


def report_outcome(finals: Sequence[BackfillProgress], failed_runs: Callable[[str], list[str]],
                   out: TextIO | None = None, err: TextIO | None = None) -> int:
    """One line per backfill; a failed one lists its failed runs. 0 when every backfill succeeded, else 1."""
    out, err = out or sys.stdout, err or sys.stderr
    code = 0
    for progress in finals:
        if progress.succeeded:
            print(f"backfill {progress.backfill_id}: {progress.status}, {progress.materialized}/{progress.targeted} "
                  "asset partitions materialized", file=out)
            continue
        code = 1
        reason = f": {progress.error}" if progress.error else ""
        print(f"backfill {progress.backfill_id}: FAILED ({progress.status}), {progress.failed} of "
              f"{progress.targeted} asset partitions failed{reason}", file=err)
        for line in failed_runs(progress.backfill_id):
            print(f"  {line}", file=err)
    return code


def _failed_run_lines(instance: dg.DagsterInstance, backfill_id: str) -> list[str]:
    from eval_pipeline.backfills import failed_runs

    return [f"run {run.run_id} failed ({run.tags.get('dagster/partition', '')})"
            for run in failed_runs(instance, backfill_id)]
