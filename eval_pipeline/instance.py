"""The persistent local Dagster instance under the state folder, on SQLite (a laptop) or on PostgreSQL (a team).

Several processes may start on one fresh state folder at once (two ``eval-pipeline run``, a run beside the UI):
the instance's storages are created and migrated by one process at a time, under a lock file in the Dagster home,
and ``dagster.yaml`` is written atomically, so no process reads half a config or half a schema.

The first use writes ``dagster.yaml``; it is never overwritten afterwards. With ``$EVAL_PIPELINE_DAGSTER_PG_URL``
set at that moment (``postgresql+psycopg2://user:password@host:5432/db``) the runs, event logs and schedules are
stored on that PostgreSQL database (dagster-postgres; the file names the variable, never the password); otherwise
on SQLite files in the Dagster home. Either way runs launched through the daemon (UI, sensors, schedules,
backfills) wait in the queued run coordinator's queue, under tag concurrency limits (per ``eval/backend`` value, per
backfill), and a run whose worker died is retried; a run that failed in an asset (a failed gate, a bad input) is
not.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.file_lock import exclusive_lock

DAGSTER_HOME_ENV = "DAGSTER_HOME"
PG_URL_ENV = "EVAL_PIPELINE_DAGSTER_PG_URL"
"""A PostgreSQL URL: when set as a new Dagster home is created, its ``dagster.yaml`` stores on that database."""
BACKEND_TAG = "eval/backend"
"""The run tag of the service a run calls (``eval_pipeline.assets.run_tags.BACKEND_TAG``; not imported, so that
loading the instance does not build the asset modules)."""
BACKFILL_TAG = "dagster/backfill"
LOCK_FILE = ".instance.lock"


@dataclass(frozen=True)
class RunQueue:
    """How many daemon-launched runs may be in progress: in all, per ``eval/backend`` value (runs calling one
    service), per backfill (so one large backfill leaves room for other runs); the default slots of each pool."""

    max_concurrent_runs: int = 4
    runs_per_backend: int = 2
    runs_per_backfill: int = 3
    pool_limit: int = 4
    max_retries: int = 2
    """Retries of a run whose worker died (killed, out of memory); a failed asset or gate is never retried."""


def instance_config(postgres_url_env: str | None = None, queue: RunQueue = RunQueue()) -> dict[str, Any]:
    """The ``dagster.yaml`` of an instance: SQLite in the Dagster home, or PostgreSQL at the URL held by the
    environment variable ``postgres_url_env`` (read by every Dagster process when it loads the instance)."""
    config: dict[str, Any] = {"telemetry": {"enabled": False}, "nux": {"enabled": False}}
    if postgres_url_env:
        config["storage"] = {"postgres": {"postgres_url": {"env": postgres_url_env}}}
    else:  # Dagster's SQLite files in the home, the event log keeping its engines (event_log_storage.py)
        config["instance_class"] = {"module": "eval_pipeline.event_log_storage", "class": "EvalPipelineInstance"}
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    config["concurrency"] = {
        "runs": {
            "max_concurrent_runs": queue.max_concurrent_runs,
            "tag_concurrency_limits": [
                {"key": BACKEND_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": queue.runs_per_backend},
                {"key": BACKFILL_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": queue.runs_per_backfill},
            ],
        },
        "pools": {"default_limit": queue.pool_limit},
    }
    config["run_retries"] = {"enabled": True, "max_retries": queue.max_retries, "retry_on_asset_or_op_failure": False}
    # The monitoring daemon frees the pool slots a killed run still held (else its retry waits for them forever).
    config["run_monitoring"] = {"enabled": True, "poll_interval_seconds": 10, "free_slots_after_run_end_seconds": 10}
    return config


def render_config(postgres_url_env: str | None = None, queue: RunQueue = RunQueue()) -> str:
    """``instance_config`` as YAML text."""
    return yaml.safe_dump(instance_config(postgres_url_env, queue), sort_keys=False)


DAGSTER_YAML = render_config()
"""The laptop default: SQLite storage, the run queue and the retries."""


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
    check_config_env(home / "dagster.yaml")
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


def uses_postgres(config: Path) -> bool:
    """Whether this ``dagster.yaml`` stores runs on PostgreSQL."""
    data = _read_config(config)
    storage = data.get("storage") or {}
    return "postgres" in storage or "dagster_postgres" in str(data.get("run_storage") or "")


def check_config_env(config: Path) -> None:
    """Every ``{env: NAME}`` the file reads is set; else an ``EvalInputError`` naming the file and the variable."""
    names = set(_env_names(_read_config(config)))
    missing = sorted(name for name in names if not os.environ.get(name))
    if missing:
        raise EvalInputError(f"{config}: reads the environment variable {', '.join(missing)}, which is not set"
                             f"{' (the PostgreSQL URL of the instance)' if PG_URL_ENV in missing else ''}")
    problem = postgres_url_problem(os.environ[PG_URL_ENV]) if PG_URL_ENV in names else None
    if problem:
        raise EvalInputError(f"{config}: ${PG_URL_ENV}: {problem}")


def postgres_url_problem(url: str) -> str | None:
    """Why SQLAlchemy cannot connect with this URL here, or None. SQLAlchemy 2.1 opens a plain ``postgresql://``
    URL with psycopg 3, while dagster-postgres installs psycopg2: such a URL must name its driver."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme.startswith(("postgresql", "postgres")):
        return f"not a PostgreSQL URL (postgresql+psycopg2://user:password@host:5432/database), got {scheme!r}"
    if "+" in scheme:
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        rest = url.split("://", 1)[1].split("@")[-1]
        return (f"a {scheme}:// URL needs psycopg 3, which is not installed: name the installed driver, "
                f"postgresql+psycopg2://…@{rest}")
    return None


class InstanceConfigWarning(UserWarning):
    """The environment asks for a storage the existing ``dagster.yaml`` does not use (it is never overwritten)."""


def _write_config(config: Path) -> None:
    """Write ``dagster.yaml`` when missing, atomically (a temp file renamed into place); an existing file is kept,
    with a warning when ``$EVAL_PIPELINE_DAGSTER_PG_URL`` asks for PostgreSQL and the file stores on SQLite."""
    wants_postgres = bool(os.environ.get(PG_URL_ENV))
    if config.exists():
        if wants_postgres and not uses_postgres(config):
            warnings.warn(f"{PG_URL_ENV} is set but {config} stores on SQLite; it is never overwritten: move it "
                          f"aside (mv {config} {config}.sqlite) and run again to write one on PostgreSQL "
                          "(past runs stay in the old storage)", InstanceConfigWarning, stacklevel=3)
        return
    handle, temp = tempfile.mkstemp(dir=config.parent, prefix=".dagster.yaml.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(render_config(PG_URL_ENV if wants_postgres else None))
        os.chmod(temp, 0o644)
        os.replace(temp, config)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_config(config: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EvalInputError(f"{config}: not valid YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def _env_names(node: Any) -> Iterator[str]:
    """The variable names of Dagster's ``{env: NAME}`` config sources anywhere in a config."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            yield node["env"]
            return
        for value in node.values():
            yield from _env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_names(value)


def _touch_storages(instance: dg.DagsterInstance) -> None:
    """One read from the run, event-log and schedule storages, so each creates and migrates its tables now."""
    instance.get_runs(limit=1)
    instance.event_log_storage.get_maximum_record_id()
    instance.all_instigator_state()


def _export(home: Path) -> None:
    os.environ[DAGSTER_HOME_ENV] = str(home)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
