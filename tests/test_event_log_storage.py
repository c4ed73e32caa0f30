"""The SQLite event log storage that keeps its engines (``eval_pipeline.event_log_storage``): new homes use it, it
writes what Dagster's own storage reads, it reuses one engine per database, and a wiped database is created again."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.event_log import SqliteEventLogStorage

from eval_pipeline import event_log_storage
from eval_pipeline.event_log_storage import EngineReusingSqliteEventLogStorage, EvalPipelineInstance
from eval_pipeline.instance import local_instance


@dg.asset
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset
def total(numbers: list[int]) -> int:
    return sum(numbers)


def run_job(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([numbers, total], instance=instance)
    assert result.success
    return result.run_id


def event_types(storage: SqliteEventLogStorage, run_id: str) -> list[str]:
    return [str(entry.dagster_event_type) for entry in storage.get_logs_for_run(run_id) if entry.is_dagster_event]


def test_a_new_home_uses_it_and_dagsters_own_storage_reads_what_it_wrote(eval_home: Path) -> None:
    instance = local_instance()
    config = yaml.safe_load((eval_home / "dagster" / "dagster.yaml").read_text())
    assert config["instance_class"] == {"module": "eval_pipeline.event_log_storage", "class": "EvalPipelineInstance"}
    assert "storage" not in config and "event_log_storage" not in config  # no path written: the home may move
    assert isinstance(instance, EvalPipelineInstance)
    storage = instance.event_log_storage
    assert isinstance(storage, EngineReusingSqliteEventLogStorage)
    first, second = run_job(instance), run_job(instance)
    assert set(storage._engines) >= {"index", first, second}
    plain = SqliteEventLogStorage(str(eval_home / "dagster" / "history" / "runs"))  # Dagster's own, same files
    for run_id in (first, second):
        written = event_types(storage, run_id)
        assert written == event_types(plain, run_id)
        assert "DagsterEventType.ASSET_MATERIALIZATION" in written and "DagsterEventType.RUN_SUCCESS" in written
    materialized = plain.get_latest_materialization_events([dg.AssetKey("total")])
    assert materialized[dg.AssetKey("total")].run_id == second  # the cross-run index too
    instance.dispose()


def test_a_moved_home_is_read_where_it_is_now(eval_home: Path, tmp_path: Path) -> None:
    instance = local_instance()
    run_id = run_job(instance)
    instance.dispose()
    moved = tmp_path / "moved"
    (eval_home / "dagster").rename(moved)
    again = dg.DagsterInstance.from_config(str(moved))  # no $DAGSTER_HOME needed: the paths come from the folder
    try:
        assert Path(again.event_log_storage._base_dir) == moved / "history" / "runs"
        assert again.get_run_by_id(run_id) is not None and event_types(again.event_log_storage, run_id)
    finally:
        again.dispose()


def test_one_engine_per_database_the_oldest_disposed_and_a_wiped_one_made_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_log_storage, "MAX_ENGINES", 3)
    storage = EngineReusingSqliteEventLogStorage(str(tmp_path / "runs"))
    with storage.run_connection("a") as conn:
        engine = conn.engine
    with storage.run_connection("a") as conn:
        assert conn.engine is engine  # kept, with its compiled statements
    for shard in ("b", "c", "d"):
        with storage.run_connection(shard):
            pass
    assert list(storage._engines) == ["b", "c", "d"]  # "a" was the oldest: disposed
    storage.wipe()  # deletes the run databases
    assert not (tmp_path / "runs" / "b.db").exists()
    with storage.run_connection("b") as conn:  # the same engine, a new file with the tables
        assert conn.engine is storage._engines["b"]
        assert conn.exec_driver_sql("select count(*) from event_logs").scalar() == 0
    storage.dispose()
    assert not storage._engines


def test_without_a_base_dir_it_takes_dagster_homes_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    storage = EngineReusingSqliteEventLogStorage.from_config_value(None, {})
    assert Path(storage._base_dir) == tmp_path / "history" / "runs"
    monkeypatch.delenv("DAGSTER_HOME")
    with pytest.raises(RuntimeError, match="DAGSTER_HOME"):
        EngineReusingSqliteEventLogStorage()
