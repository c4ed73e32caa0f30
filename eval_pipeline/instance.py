"""The persistent local Dagster instance under the state folder.

Several processes may start on one fresh state folder at once (two ``eval-pipeline run``, a run beside the UI):
the instance's SQLite storages are created and migrated by one process at a time, under a lock file in the
Dagster home, and ``dagster.yaml`` is written atomically, so no process reads half a config or half a schema.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dagster as dg

from eval_pipeline import paths
from eval_pipeline.file_lock import exclusive_lock

DAGSTER_HOME_ENV = "DAGSTER_HOME"
LOCK_FILE = ".instance.lock"
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: 4
"""


def dagster_home_path() -> Path:
    """``$DAGSTER_HOME`` if set, else ``<state>/dagster``; nothing is created."""
    override = os.environ.get(DAGSTER_HOME_ENV)
    return Path(override).expanduser().resolve() if override else paths.state_path("dagster")


def prepare_dagster_home() -> Path:
    """The Dagster home (created, with ``dagster.yaml``, telemetry off), exported for child processes."""
    overridden = bool(os.environ.get(DAGSTER_HOME_ENV))
    home = paths.writable_folder(dagster_home_path(), DAGSTER_HOME_ENV) if overridden else paths.dagster_home()
    with exclusive_lock(home / LOCK_FILE):
        _write_config(home / "dagster.yaml")
    _export(home)
    return home


def local_instance() -> dg.DagsterInstance:
    """The instance of the Dagster home, its storages created and migrated under the lock when first used."""
    home = prepare_dagster_home()
    with exclusive_lock(home / LOCK_FILE):
        instance = dg.DagsterInstance.get()
        _touch_storages(instance)
    return instance


def existing_instance() -> dg.DagsterInstance | None:
    """The instance when the Dagster home already holds one, else None; creates no state."""
    home = dagster_home_path()
    if not (home / "dagster.yaml").is_file():
        return None
    return local_instance()


def _write_config(config: Path) -> None:
    """Write ``dagster.yaml`` when missing, atomically (a temp file renamed into place)."""
    if config.exists():
        return
    handle, temp = tempfile.mkstemp(dir=config.parent, prefix=".dagster.yaml.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(DAGSTER_YAML)
        os.chmod(temp, 0o644)
        os.replace(temp, config)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _touch_storages(instance: dg.DagsterInstance) -> None:
    """One read from the run, event-log and schedule storages, so each creates and migrates its tables now."""
    instance.get_runs(limit=1)
    instance.event_log_storage.get_maximum_record_id()
    instance.all_instigator_state()


def _export(home: Path) -> None:
    os.environ[DAGSTER_HOME_ENV] = str(home)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
