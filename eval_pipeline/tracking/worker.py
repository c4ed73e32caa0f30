"""MLflow logging in a helper process, started when a suite's run begins.

Importing mlflow and opening its store take seconds of CPU, and a run needs neither until its metrics step. A
``TrackingWorker`` starts ``python -m eval_pipeline.tracking.worker`` at once: on the machine's other core it
imports mlflow, opens (on first use: creates and migrates) the store and ends the runs dead processes left
RUNNING, while the run's first steps go on here. The metrics step then hands its record to it and waits for the
run id, exactly as when it logged itself: same store, same runs, the same exceptions raised to the caller.

The worker of a store is found by ``active_worker(tracking_uri)`` in the thread that started it (Dagster's
in-process executor runs the steps there); any other caller logs in its own process, as before.

What the answer does not wait for (each item's trace) is *deferred*: the worker takes the call, answers at once
and runs it after its last ordinary call, when the caller closes it. A caller that prints its answer and exits
(the CLI) lets the worker finish alone (``prestart(..., finish_in_background=True)``): its output then goes to
``<state>/logs/mlflow-background.log``, and it holds a shared lock that ``wait_for_background_logging`` waits on.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import hashlib
import logging
import os
import pickle
import signal
import site
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORWARDED_LOGGERS = ("alembic", "mlflow", "mlflow.store.db.utils", "eval_pipeline")
"""Loggers whose level the worker takes from the process that starts it (a quiet CLI stays quiet; the SDK's
quieted store migrations, ``sdk/quiet_logs.py``, stay quiet)."""

BACKGROUND_LOG = ("logs", "mlflow-background.log")
"""Where a worker left to finish alone writes its output, under the state folder."""

_local = threading.local()
_prestarted: dict[str, TrackingWorker] = {}
_detached: list[subprocess.Popen] = []  # workers finishing alone: kept, so no "still running" warning at exit
_deferred: list[tuple[Callable[..., Any], tuple, dict]] = []  # in the worker: calls run after the last ordinary one
_worker_state: dict[str, Any] = {}  # in the worker: its tracking URI (set by ``warm_up``)
_held_locks: list[Any] = []  # in the worker: the open lock file of its deferred calls


class WorkerError(RuntimeError):
    """The helper process ended, or a request or an answer could not be passed between the processes."""


class TrackingWorker:
    """A helper process that runs logging functions for one tracking URI, one request at a time, in order."""

    def __init__(self, tracking_uri: str, *, finish_in_background: bool = False) -> None:
        self.tracking_uri = tracking_uri
        self.finish_in_background = finish_in_background
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "eval_pipeline.tracking.worker", str(request_read), str(answer_write)],
                pass_fds=(request_read, answer_write), stdin=subprocess.DEVNULL, stdout=_stderr(), env=_child_env())
        except BaseException:
            for fd in (request_write, answer_read):
                os.close(fd)
            raise
        finally:
            os.close(request_read)
            os.close(answer_write)
        self._requests = Connection(request_write, readable=False)
        self._answers = Connection(answer_read, writable=False)
        self._lock = threading.Lock()
        self._sent = self._received = 0
        self._waiting: dict[int, tuple[bool, Any]] = {}
        self._unclaimed: set[int] = set()
        self.submit(warm_up, tracking_uri, output_settings(), claim=False)

    def submit(self, function: Callable[..., Any], /, *args: Any, claim: bool = True, **kwargs: Any) -> int:
        """Send a call; returns its ticket for ``result``. An unclaimed call's error is logged when the worker
        closes."""
        return self._send((function, args, kwargs), claim)

    def defer(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Have ``function(*args, **kwargs)`` run after the worker's last ordinary call, without waiting for it.
        Its error is logged by the worker (in its background log when it finishes alone)."""
        self._send((_defer, (function, args, kwargs), {}), claim=False)

    def _send(self, request: tuple, claim: bool) -> int:
        with self._lock:
            return self._send_unlocked(request, claim)

    def _send_unlocked(self, request: tuple, claim: bool) -> int:
        try:
            self._requests.send(request)
        except (OSError, EOFError) as exc:
            raise WorkerError(f"the MLflow logging process has ended (exit {self._process.poll()})") from exc
        self._sent += 1
        if not claim:
            self._unclaimed.add(self._sent)
        return self._sent

    def result(self, ticket: int) -> Any:
        """The return value of the call ``ticket``, waiting for it; its exception is raised here."""
        with self._lock:
            while ticket not in self._waiting:
                self._receive()
            ok, value = self._waiting.pop(ticket)
        if ok:
            return value
        raise value

    def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` run by the worker."""
        return self.result(self.submit(function, *args, **kwargs))

    def close(self) -> None:
        """Wait for every call sent, then let the process end, having run its deferred calls; a worker that
        finishes in the background is not waited for. Unclaimed calls that failed are logged."""
        with self._lock:
            try:
                if self.finish_in_background:
                    self._send_unlocked((_finish_alone, (str(background_log_path()),), {}), claim=False)
                while self._received < self._sent:
                    self._receive()
            except WorkerError as exc:
                logger.warning("%s", exc)
            finally:
                self._requests.close()
                self._answers.close()
                if self.finish_in_background and self._process.poll() is None:
                    _detached.append(self._process)
                else:
                    self._process.wait()
            for ticket in sorted(self._unclaimed & set(self._waiting)):
                ok, value = self._waiting.pop(ticket)
                if not ok:
                    logger.warning("MLflow logging process: %s: %s", type(value).__name__, value)

    def _receive(self) -> None:
        try:
            data = self._answers.recv_bytes()
        except (OSError, EOFError) as exc:
            raise WorkerError(f"the MLflow logging process ended before answering "
                              f"(exit {self._process.wait()})") from exc
        self._received += 1
        try:
            self._waiting[self._received] = pickle.loads(data)
        except Exception as exc:  # an answer this process cannot rebuild still answers its call
            self._waiting[self._received] = (False, WorkerError(f"the answer could not be read: {exc}"))


def active_worker(tracking_uri: str) -> TrackingWorker | None:
    """The worker this thread started for ``tracking_uri``, if one is running."""
    return getattr(_local, "workers", {}).get(tracking_uri)


def run_logged(store: str, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in the active worker of the tracking URI ``store``, else in this process."""
    worker = active_worker(store)
    return function(*args, **kwargs) if worker is None else worker.call(function, *args, **kwargs)


def run_deferred(store: str, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """``function(*args, **kwargs)`` deferred to the active worker of the tracking URI ``store`` (run after its
    last ordinary call, not waited for), else run now in this process."""
    worker = active_worker(store)
    if worker is None:
        function(*args, **kwargs)
    else:
        worker.defer(function, *args, **kwargs)


def background_log_path() -> Path:
    """The log of workers left to finish alone: ``<state>/logs/mlflow-background.log``."""
    from eval_pipeline import paths

    return paths.state_path(*BACKGROUND_LOG)


def background_lock_path(tracking_uri: str) -> Path:
    """The lock file a worker holds (shared) while it has deferred calls to run for ``tracking_uri``: beside a
    SQLite store's file (whoever asks, whatever their state folder), else under the state folder."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri[len("sqlite:///"):].split("?", 1)[0])
        return database.with_name(f"{database.name}.deferred.lock")
    from eval_pipeline import paths

    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return paths.state_path("locks", f"mlflow-deferred-{digest}.lock")


def wait_for_background_logging(tracking_uri: str) -> None:
    """Return once no worker has deferred calls left to run for ``tracking_uri`` (e.g. the item traces of an
    ``eval-pipeline run`` that has printed its answer and exited)."""
    path = background_lock_path(tracking_uri)
    if not path.exists():
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        fcntl.flock(handle, fcntl.LOCK_UN)


def prestart(tracking_uri: str, *, finish_in_background: bool = False) -> None:
    """Start the worker of ``tracking_uri`` now, for the next ``tracking_worker(tracking_uri)`` of this process to
    take (the CLI calls it before it loads Dagster, so both load at once); one never taken is closed at exit. A
    process that has imported mlflow already logs itself (``logging_helper``): none is started. With
    ``finish_in_background``, closing it does not wait for its deferred calls (the process that prints an answer
    and exits)."""
    if tracking_uri in _prestarted or "mlflow" in sys.modules:
        return
    try:
        _prestarted[tracking_uri] = TrackingWorker(tracking_uri, finish_in_background=finish_in_background)
    except OSError:
        return  # tracking_worker tries again, or logs in this process
    atexit.register(_close_unclaimed)


def _close_unclaimed() -> None:
    while _prestarted:
        _prestarted.popitem()[1].close()


@contextlib.contextmanager
def tracking_worker(tracking_uri: str) -> Iterator[TrackingWorker | None]:
    """A worker for ``tracking_uri`` while the block runs (closed after it, waiting for its calls): the one
    ``prestart`` started, else a new one; None, and the logging done in this process, when no helper process can
    be started."""
    try:
        worker = _prestarted.pop(tracking_uri, None) or TrackingWorker(tracking_uri)
    except OSError as exc:
        logger.warning("MLflow is logged in this process: no helper process: %s", exc)
        yield None
        return
    workers = _local.__dict__.setdefault("workers", {})
    previous = workers.get(tracking_uri)
    workers[tracking_uri] = worker
    try:
        yield worker
    finally:
        if previous is None:
            workers.pop(tracking_uri, None)
        else:
            workers[tracking_uri] = previous
        worker.close()


def warm_up(tracking_uri: str, settings: dict[str, Any]) -> list[str]:
    """The worker's first call: the caller's output settings applied (``apply_output_settings``), mlflow imported,
    the store opened (created and migrated on first use), and the runs of dead processes ended
    (``end_orphaned_runs``); a store that cannot be read is logged, not raised (cleaning up must not stop a run)."""
    apply_output_settings(settings)
    _worker_state["tracking_uri"] = tracking_uri
    from eval_pipeline.tracking.mlflow_log import tracking_client
    from eval_pipeline.tracking.stale_runs import end_orphaned_runs

    try:
        tracking_client(tracking_uri)
        return end_orphaned_runs(tracking_uri)
    except Exception as exc:
        logger.warning("could not look for MLflow runs left RUNNING at %s: %s", tracking_uri, exc)
        return []


def serve(requests: Connection, answers: Connection) -> None:
    """Answer each request ``(function, args, kwargs)`` with ``(True, value)`` or ``(False, exception)`` until
    the requests pipe closes."""
    while True:
        try:
            data = requests.recv_bytes()
        except (EOFError, OSError):
            answers.close()
            run_deferred_calls()
            gc.freeze()  # the process ends now: no collector pass over mlflow's objects at exit (~1 s of CPU)
            return
        try:
            function, args, kwargs = pickle.loads(data)
            answer: tuple[bool, Any] = (True, function(*args, **kwargs))
        except BaseException as exc:
            answer = (False, _portable(exc))
        try:
            answers.send(answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            answers.send((False, WorkerError(f"the answer could not be sent back: {exc}")))


def _defer(function: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """In the worker: keep a call for ``run_deferred_calls``; the first one takes the shared background lock."""
    if not _held_locks:
        path = background_lock_path(_worker_state.get("tracking_uri", ""))
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
        fcntl.flock(handle, fcntl.LOCK_SH)
        _held_locks.append(handle)
    _deferred.append((function, args, kwargs))


def _finish_alone(log_path: str) -> None:
    """In the worker: the caller will not wait, so the deferred calls' output goes to ``log_path`` (appended),
    not to a terminal or pipe the caller has given back."""
    if not _deferred:
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)
    if not logging.getLogger().handlers:  # dated lines: the file collects many runs
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logger.info("pid %d: finishing %d deferred MLflow call(s) for %s", os.getpid(), len(_deferred),
                _worker_state.get("tracking_uri"))


def run_deferred_calls() -> None:
    """In the worker: run the deferred calls in order, each error logged (the caller has moved on), then let go
    of the background lock."""
    while _deferred:
        function, args, kwargs = _deferred.pop(0)
        try:
            function(*args, **kwargs)
        except BaseException:
            logger.exception("deferred MLflow call %s failed", getattr(function, "__qualname__", function))
    while _held_locks:
        _held_locks.pop().close()


def _portable(exc: BaseException) -> BaseException:
    """The exception, with the worker's traceback as a note, if it survives pickling; else a ``WorkerError``
    with its type, message and traceback."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"in the MLflow logging process:\n{text}")
        copy = pickle.loads(pickle.dumps(exc))
        return copy if isinstance(copy, BaseException) else WorkerError(text)
    except Exception:
        return WorkerError(f"{type(exc).__name__}: {exc}\n{text}")


def output_settings() -> dict[str, Any]:
    """What this process shows of its libraries, for the worker to show the same: the levels of the loggers that
    matter, the root logger's level and format when it has a handler, and the warnings filters (each pickled
    alone: one whose category the worker cannot import is dropped there, not the others)."""
    root = logging.getLogger()
    formats = [h.formatter._fmt for h in root.handlers if h.formatter is not None and h.formatter._fmt]
    filters = []
    for entry in warnings.filters:
        with contextlib.suppress(Exception):
            filters.append(pickle.dumps(entry))
    return {"levels": {name: logging.getLogger(name).getEffectiveLevel() for name in FORWARDED_LOGGERS},
            "root": (root.level, formats[0]) if formats else None, "warnings": filters}


def apply_output_settings(settings: dict[str, Any]) -> None:
    """Show what the caller shows (``output_settings``)."""
    if settings.get("root") is not None:
        level, fmt = settings["root"]
        logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    for name, level in settings.get("levels", {}).items():
        logging.getLogger(name).setLevel(level)
    filters = []
    for data in settings.get("warnings", []):
        with contextlib.suppress(Exception):
            filters.append(pickle.loads(data))
    if filters:
        warnings.filters[:] = filters
        warnings._filters_mutated()  # type: ignore[attr-defined]


def _child_env() -> dict[str, str]:
    """This environment, with the folder of the ``eval_pipeline`` this process runs first on ``PYTHONPATH`` (a
    source checkout, a copy under test), unless it is an installed package's site-packages, found anyway."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root in installed:
        return dict(os.environ)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}


def _stderr() -> int:
    """The worker's stdout: this process's stderr (the caller's stdout stays its own, e.g. ``--json``)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the caller, which closes this after its last call
    gc.set_threshold(100_000, 50, 100)  # fewer collector passes while mlflow loads: ~20% of its import time
    from eval_pipeline.tracking import worker  # the module itself, not __main__: its WorkerError pickles by name

    worker.serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
