"""What the command line shows of its libraries: their housekeeping by default, everything with ``--verbose``.

By default a command's output is the pipeline's own lines (results, progress, errors and real warnings): no
Dagster DEBUG events, no database migration lines (alembic's "Context impl SQLiteImpl.", MLflow's "Creating initial
MLflow database tables..."), no beta/preview/superseded/deprecation warnings from Dagster or MLflow, no
FutureWarnings, and, when stderr is not a terminal, no progress bars of the model libraries (their carriage returns
and escapes garble captured output). ``--verbose`` shows all of that: libraries log at INFO in alembic's format
(``INFO  [alembic.runtime.migration] ...``) and Dagster's event log at DEBUG.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY_LOGGERS = ("alembic", "mlflow", "urllib3", "botocore", "filelock", "httpx")
"""Libraries that log their housekeeping at INFO: raised to WARNING unless ``--verbose``."""
LIBRARY_LOG_FORMAT = "%(levelname)-5.5s [%(name)s] %(message)s"
"""Library log lines under ``--verbose``: alembic's own format."""
QUIET_WARNINGS = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)
"""Warnings about the libraries' futures (MLflow's FutureWarnings, Dagster's supersession warnings): nothing a
user of the command can act on."""
DAGSTER_WARNINGS = ("BetaWarning", "PreviewWarning", "SupersessionWarning")
"""Dagster's warnings about its own API (``dagster_shared.utils.warnings``), silenced once Dagster is in use."""
SUBPROCESS_WARNINGS = ("ignore::FutureWarning", "ignore::DeprecationWarning")
"""``PYTHONWARNINGS`` for a Dagster process the command starts (``ui``: ``dagster dev`` says "use 'dg dev'", a
SupersessionWarning, a FutureWarning)."""


def configure_output(verbose: bool) -> None:
    """Set what the libraries may print for this command: quiet (the default) or everything (``verbose``).

    Call before the libraries are imported where possible: MLflow reads ``MLFLOW_LOGGING_LEVEL`` and the Hugging
    Face libraries ``HF_HUB_DISABLE_PROGRESS_BARS`` on import. A level or variable the user set is kept."""
    if verbose:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format=LIBRARY_LOG_FORMAT, stream=sys.stderr)
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if not _is_terminal(sys.stderr):
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    for category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", category=category)


def quiet_dagster_warnings() -> None:
    """Silence Dagster's beta, preview and supersession warnings (imports ``dagster_shared``: call it where Dagster
    is used anyway)."""
    from dagster_shared.utils import warnings as dagster_warnings

    for name in DAGSTER_WARNINGS:
        category = getattr(dagster_warnings, name, None)
        if isinstance(category, type) and issubclass(category, Warning):
            warnings.filterwarnings("ignore", category=category)


def quiet_child_processes(verbose: bool) -> None:
    """Silence the warnings of the Python processes this command starts from now on (``PYTHONWARNINGS``), unless
    ``verbose``; a ``PYTHONWARNINGS`` the user set comes last, so it wins."""
    if verbose:
        return
    given = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join([*SUBPROCESS_WARNINGS, *([given] if given else [])])


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False
