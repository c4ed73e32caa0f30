"""Keeping the stores' housekeeping out of a user's INFO log.

The seed's notebook starts with ``logging.basicConfig(level=logging.INFO)``. Opening the Dagster instance and the
MLflow store for the first time migrates their SQLite databases, and alembic and MLflow log every step of that at
INFO ("Context impl SQLiteImpl.", "Running stamp_revision", "Creating initial MLflow database tables..."): dozens
of lines that say nothing about the evaluation. The SDK raises those loggers to WARNING before it opens a store,
but only a logger nobody has configured (level NOTSET): a level the user set stays, so
``logging.getLogger("alembic").setLevel(logging.INFO)`` brings the lines back. The root logger, its handlers and
the pipeline's own loggers (``eval_pipeline.*``: what the SDK is doing, progress) are never touched.
"""

from __future__ import annotations

import logging

STORE_LOGGERS = ("alembic", "mlflow.store.db.utils")
"""Loggers that report database migrations (alembic: Dagster's and MLflow's schemas; MLflow's own table setup)."""


def quiet_store_logs() -> list[str]:
    """Raise each unconfigured ``STORE_LOGGERS`` logger to WARNING; returns the names changed (idempotent)."""
    changed = []
    for name in STORE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
            changed.append(name)
    return changed
