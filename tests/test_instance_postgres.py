"""The instance's ``dagster.yaml``: PostgreSQL when ``$EVAL_PIPELINE_DAGSTER_PG_URL`` is set at creation, SQLite
otherwise; the queued run coordinator with tag limits, run retries; an existing file is never overwritten.

Against a real PostgreSQL server (``postgres_url``): the generated file loads as a real ``DagsterInstance``, a run
written through one instance is read back through another and found in the database's own ``runs`` table.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from eval_pipeline.assets.run_tags import BACKEND_TAG, suite_run_tags
from eval_pipeline.errors import EvalInputError
from eval_pipeline.instance import (
    BACKEND_TAG as INSTANCE_BACKEND_TAG,
)
from eval_pipeline.instance import (
    DAGSTER_YAML,
    PG_URL_ENV,
    InstanceConfigWarning,
    RunQueue,
    local_instance,
    postgres_url_problem,
    prepare_dagster_home,
    render_config,
    uses_postgres,
)

EXPECTED_TAG_LIMITS = [
    {"key": "eval/backend", "value": {"applyLimitPerUniqueValue": True}, "limit": 2},
    {"key": "dagster/backfill", "value": {"applyLimitPerUniqueValue": True}, "limit": 3},
]


def _load(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def psycopg2_url(url: str) -> str:
    """The fixture's ``postgresql://`` URL naming the installed driver (SQLAlchemy 2.1 defaults to psycopg 3)."""
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def test_postgres_config_loads_as_a_queued_instance_on_the_database(tmp_path: Path, postgres_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PG_URL_ENV, psycopg2_url(postgres_url))
    (tmp_path / "dagster.yaml").write_text(render_config(PG_URL_ENV))
    assert postgres_url.split("@")[0] not in (tmp_path / "dagster.yaml").read_text()  # no password in the file

    writer = _load(tmp_path)
    try:
        assert type(writer.run_storage).__name__ == "PostgresRunStorage"
        assert type(writer.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(writer.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(writer.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = writer.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == EXPECTED_TAG_LIMITS
        assert writer.run_retries_enabled and writer.run_retries_max_retries == 2
        assert writer.run_retries_retry_on_asset_or_op_failure is False  # a failed gate is not retried
        assert writer.run_monitoring_enabled
        run_id = str(uuid.uuid4())
        writer.add_run(dg.DagsterRun(job_name="pg_probe", run_id=run_id, tags=suite_run_tags("s", backend="openai")))
    finally:
        writer.dispose()

    reader = _load(tmp_path)  # a second instance (another process, in production) sees the run
    try:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.tags[BACKEND_TAG] == "openai"
    finally:
        reader.dispose()
    connection = psycopg2.connect(postgres_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pipeline_name FROM runs WHERE run_id = %s", (run_id,))
            assert cursor.fetchall() == [("pg_probe",)]
    finally:
        connection.close()


def test_the_queue_tag_is_the_run_tag() -> None:
    assert INSTANCE_BACKEND_TAG == BACKEND_TAG
    assert suite_run_tags("s", backend="bedrock") == {"eval/suite": "s", "eval/backend": "bedrock"}
    assert suite_run_tags("s", "m") == {"eval/suite": "s", "eval/model": "m"}


def test_queue_settings_are_written() -> None:
    config = yaml.safe_load(render_config(None, RunQueue(max_concurrent_runs=9, runs_per_backend=1,
                                                         runs_per_backfill=5, pool_limit=7, max_retries=3)))
    assert "storage" not in config
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 9
    assert [limit["limit"] for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]] == [1, 5]
    assert config["concurrency"]["pools"] == {"default_limit": 7}
    assert config["run_retries"] == {"enabled": True, "max_retries": 3, "retry_on_asset_or_op_failure": False}


def test_sqlite_default_loads_with_the_queue(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    instance = _load(tmp_path)
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.get_concurrency_config().run_queue_config.tag_concurrency_limits == EXPECTED_TAG_LIMITS
        assert instance.run_retries_enabled
    finally:
        instance.dispose()


def test_new_home_follows_the_environment(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PG_URL_ENV, "postgresql+psycopg2://u:secret@127.0.0.1:1/none")
    config = prepare_dagster_home() / "dagster.yaml"
    assert uses_postgres(config)
    assert yaml.safe_load(config.read_text())["storage"] == {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    assert "secret" not in config.read_text()


def test_new_home_without_the_variable_is_sqlite(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    config = prepare_dagster_home() / "dagster.yaml"
    assert config.read_text() == DAGSTER_YAML and not uses_postgres(config)


def test_existing_sqlite_config_is_kept_with_a_warning(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    config = prepare_dagster_home() / "dagster.yaml"
    before = config.read_bytes()
    monkeypatch.setenv(PG_URL_ENV, "postgresql+psycopg2://u:p@127.0.0.1:1/none")
    with pytest.warns(InstanceConfigWarning, match="never overwritten: move it aside"):
        prepare_dagster_home()
    assert config.read_bytes() == before
    with warnings.catch_warnings():  # asking for what the file already uses says nothing
        warnings.simplefilter("error")
        monkeypatch.delenv(PG_URL_ENV)
        prepare_dagster_home()


def test_postgres_config_without_its_variable_is_an_input_error(eval_home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PG_URL_ENV, "postgresql+psycopg2://u:p@127.0.0.1:1/none")
    config = prepare_dagster_home() / "dagster.yaml"
    monkeypatch.delenv(PG_URL_ENV)
    with pytest.raises(EvalInputError, match=f"{config}: reads the environment variable {PG_URL_ENV}, which is not"):
        local_instance()


def test_a_url_without_an_installed_driver_is_an_input_error(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg2")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("psycopg 3 is installed: a plain postgresql:// URL works")
    monkeypatch.setenv(PG_URL_ENV, "postgresql://u:secret@db.example:5432/dagster")
    with pytest.raises(EvalInputError, match=r"needs psycopg 3, which is not installed: name the installed driver, "
                                             r"postgresql\+psycopg2://…@db.example:5432/dagster") as caught:
        local_instance()
    assert "secret" not in str(caught.value)
    assert postgres_url_problem("mysql://x@y/z").startswith("not a PostgreSQL URL")
    assert postgres_url_problem("postgresql+psycopg2://u:p@h:5432/d") is None
