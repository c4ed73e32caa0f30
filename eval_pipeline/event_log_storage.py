"""Dagster's SQLite storage, its event log keeping one SQLAlchemy engine per database file.

Dagster's ``SqliteEventLogStorage`` builds a new engine for every connection: a run of a suite opens about 300,
and each new engine also starts with an empty statement cache, so every insert is compiled again (~0.3 s of CPU
per run on these machines). ``EngineReusingSqliteEventLogStorage`` keeps the engines (no pooled connections:
``NullPool``, as Dagster's; the most recent ``MAX_ENGINES`` files) and is otherwise Dagster's: the same files under
``<Dagster home>/history/runs/``, the same schema, a database created on first use and again after a wipe.

New SQLite Dagster homes name ``EvalPipelineInstance`` as their ``instance_class`` (``eval_pipeline.instance``):
Dagster's own instance, whose default storage is ``DagsterSqliteStorage`` with this event log, under whatever
folder the home is now (no path is written into ``dagster.yaml``, so a moved state folder keeps working).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as db
import yaml
from dagster import Field, StringSource
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import NullPool

MAX_ENGINES = 64
"""Engines kept (one per database file: the index and the most recent runs'); older ones are disposed."""


def default_base_dir() -> str:
    """Where Dagster keeps the per-run event databases of ``$DAGSTER_HOME``: ``history/runs``."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise RuntimeError("the event log storage needs base_dir in its config, or $DAGSTER_HOME")
    return os.path.join(home, "history", "runs")


class EngineReusingSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with its engines kept (see the module's docstring)."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        super().__init__(base_dir or default_base_dir(), inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> EngineReusingSqliteEventLogStorage:
        return cls(base_dir=config_value.get("base_dir"), inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.engine.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:  # a new file, or one deleted by a wipe
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> db.engine.Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(self.conn_string_for_shard(shard), poolclass=NullPool,
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._engines[shard] = engine
        while len(self._engines) > MAX_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def dispose(self) -> None:
        super().dispose()
        while self._engines:
            self._engines.popitem()[1].dispose()


class EngineReusingSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event log, schedules under one folder) with the engine-keeping event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data)
        self._event_log_storage = EngineReusingSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> EngineReusingSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class EvalPipelineInstance(dg.DagsterInstance):
    """Dagster's instance; on SQLite, by default, its storage is ``EngineReusingSqliteStorage`` of the home."""

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        defaults = dict(InstanceRef.config_defaults(base_dir))
        defaults["storage"] = ConfigurableClassData(__name__, EngineReusingSqliteStorage.__name__,
                                                    yaml.dump({"base_dir": base_dir}, default_flow_style=False))
        defaults["event_log_storage"] = ConfigurableClassData(
            __name__, EngineReusingSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": _event_logs_directory(base_dir)}, default_flow_style=False))
        return defaults
