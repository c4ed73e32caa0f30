"""Runs of this machine whose process died (kill -9, out of memory) stay STARTED and keep their pool slots;
marking them failed frees the slots so the next run is not blocked behind a ghost."""

from __future__ import annotations

import os
import socket

import dagster as dg

HOST_TAG, PID_TAG = "eval/host", "eval/pid"


def process_tags() -> dict[str, str]:
    """Tags that tie an in-process run to this host and process."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's in-process runs whose process is gone as failed and free their concurrency slots."""
    filters = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
                            tags={HOST_TAG: socket.gethostname()})
    orphans = []
    for run in instance.get_runs(filters=filters):
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid and pid != os.getpid() and not _alive(pid):
            instance.report_run_failed(run, f"the process running it (pid {pid}) is gone")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            orphans.append(run.run_id)
    return orphans


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
