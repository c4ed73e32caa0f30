"""Progress of long work: count, rate and time left, in the terminal and in the run log.

``Progress(description, log)`` is called with ``(done, total)`` as work finishes. It writes a line such as
``quickstart/m generation: 120/1000 (12%) · 8.1 req/s · 1m49s left`` to ``log`` (the Dagster run log) at the
first call, whenever 5% more is done or 10 s have passed since the last line (whichever comes first), and a final
line (``done 1000/1000 in 2m03s · 8.1 req/s``) at the end. What was already done at the first call (the request
cache's answers) is said once as ``N from cache`` and left out of the rate, so a run that is 90% cached times only
the rest; work that finds its answers in the cache along the way says so with ``from_cache(count)`` (callers
reach it as ``getattr(on_progress, "from_cache", None)``: any ``(done, total)`` callable still works).

In the terminal (stderr): a live tqdm bar when stderr is a TTY; else the same lines at the same cadence, plain
text (no carriage returns, no ANSI escapes), so captured output and CI logs read like the run log. Only work
started on the main thread is shown there: an evaluation running in a background thread (the SDK's in-process
execution) is shown by its ``wait()``, which reads the lines back from the run log (``is_progress_line``).

Scorers deep inside a stage (the code verifier) report through ``stage_progress()``, the progress of the stage
running in this context (``reporting(progress)`` sets it), so no callback is threaded through every layer.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

EVERY_S = 10.0
"""A line at least this often (seconds) while work finishes."""
EVERY_FRACTION = 0.05
"""... or whenever this fraction of the total more is done, whichever comes first."""
PROGRESS_MARK = " · "
"""What separates a line's fields (count, from cache, rate, time left)."""

ProgressCallback = Callable[[int, int], None]

_STAGE: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar("eval_pipeline_stage_progress",
                                                                                 default=None)


def format_duration(seconds: float) -> str:
    """``49s``, ``1m05s``, ``2h03m`` (to the nearest second, and never ``0s`` for a positive time)."""
    total = max(1, round(seconds)) if seconds > 0 else 0
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"


def format_rate(per_second: float, unit: str) -> str:
    """``8.1 req/s`` (``123 req/s`` from 100 up); below one a second, the time per unit: ``4.0 s/req``."""
    if per_second >= 100:
        return f"{per_second:.0f} {unit}/s"
    if per_second >= 1:
        return f"{per_second:.1f} {unit}/s"
    return f"{1 / per_second:.1f} s/{unit}" if per_second > 0 else f"0 {unit}/s"


def progress_line(description: str, done: int, total: int, *, cached: int, elapsed: float, unit: str) -> str:
    """One line: count and percent, what came from the cache, and (once this run has done any work) its rate and
    the time left at that rate; the final line gives the elapsed time instead."""
    parts = []
    work, rate = done - cached, None
    if elapsed > 0 and work > 0:
        rate = work / elapsed
    if total > 0 and done >= total:
        head = f"{description}: done {done}/{total}"
        if work > 0:
            head += f" in {format_duration(elapsed)}"
        parts.append(head)
        if cached:
            parts.append("all from cache" if cached >= total else f"{cached} from cache")
        if rate is not None:
            parts.append(format_rate(rate, unit))
        return PROGRESS_MARK.join(parts)
    percent = 100 if total <= 0 else done * 100 // total
    parts.append(f"{description}: {done}/{total} ({percent}%)")
    if cached:
        parts.append(f"{cached} from cache")
    if rate is not None:
        parts.append(format_rate(rate, unit))
        parts.append(f"{format_duration((total - done) / rate)} left")
    return PROGRESS_MARK.join(parts)


def is_progress_line(message: str) -> bool:
    """Whether a run-log message is a progress line (``wait()`` picks these out of the run's events)."""
    head, _, rest = message.partition(": ")
    return bool(head) and bool(rest) and (rest.startswith("done ") or "%)" in rest.split(PROGRESS_MARK)[0])


class Progress:
    """Call with ``(done, total)``; see the module docstring. ``unit`` names what is counted (``req``,
    ``rollout``, ``check``); ``clock`` is injectable (tests); ``terminal`` says whether to show it on stderr
    (default: when made on the main thread); ``bar`` whether as a live bar (default: when stderr is a TTY);
    ``stream`` replaces stderr."""

    def __init__(self, description: str, log: Callable[[str], None] | None = None, *, bar: bool | None = None,
                 unit: str = "req", clock: Callable[[], float] = time.monotonic, terminal: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.description, self.log, self.unit, self.clock = description, log, unit, clock
        self.terminal = threading.current_thread() is threading.main_thread() if terminal is None else terminal
        self._stream, self._want_bar = stream, bar
        self._bar: Any = None
        self._lock = threading.Lock()
        self._started: float | None = None
        self._cached = 0
        self._last_at = 0.0
        self._last_done = -1
        self._finished = False
        self.lines: list[str] = []
        """Every line written so far (the run log's and the plain terminal's)."""

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            self._advance(done, total)

    def from_cache(self, count: int) -> None:
        """Say that ``count`` of the work reported next came from the cache (found along the way, as likelihood
        chunks find theirs): it is counted as cached and left out of the rate. Call before reporting it."""
        with self._lock:
            self._cached += count

    def _advance(self, done: int, total: int) -> None:
        now = self.clock()
        if self._started is None:
            self._started, self._cached = now, self._cached + done
            self._open_bar(done, total)
            self._emit(done, total, now)
            return
        if self._finished:
            return
        if self._bar is not None:
            self._bar.update(max(0, done - self._bar.n))
        step = max(1, math.ceil(total * EVERY_FRACTION))
        if done >= total or done - self._last_done >= step or now - self._last_at >= EVERY_S:
            self._emit(done, total, now)

    def _emit(self, done: int, total: int, now: float) -> None:
        assert self._started is not None
        line = progress_line(self.description, done, total, cached=self._cached, elapsed=now - self._started,
                             unit=self.unit)
        self._last_at, self._last_done = now, done
        self._finished = done >= total
        self.lines.append(line)
        if self.log is not None:
            self.log(line)
        if self._finished:
            self._close_bar()
        if self.terminal and (self._finished or not self._use_bar()):  # a live bar says the rest
            print(line, file=self.stream, flush=True)

    def _use_bar(self) -> bool:
        if self._want_bar is not None:
            return self._want_bar
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def _open_bar(self, done: int, total: int) -> None:
        if not (self.terminal and done < total and self._use_bar()):
            return  # nothing left to do (all cached), or plain lines: no bar
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=done, desc=self.description, unit=self.unit, file=self.stream,
                         leave=False, dynamic_ncols=True, mininterval=0.5)
        if done:
            self._bar.set_postfix_str(f"{done} from cache", refresh=False)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """End the bar (the final line was written when the count reached the total)."""
        with self._lock:
            self._close_bar()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def by_parts(on_progress: ProgressCallback, sizes: Sequence[int], *, start: int, total: int) -> Callable[[int], None]:
    """A callback for parts finished (``count`` at a time; item ``i`` has ``sizes[i]`` parts: a question's choices,
    a judgment's rating levels) that reports whole items done, ``start`` before them, out of ``total``. The last
    item is left for the caller to report once its results are read."""
    ends = list(itertools.accumulate(sizes))
    finished_parts, reported = 0, 0

    def advance(count: int) -> None:
        nonlocal finished_parts, reported
        finished_parts += count
        items = bisect.bisect_right(ends, finished_parts)
        if reported < items < len(ends):  # only when an item more is whole
            reported = items
            on_progress(start + items, total)

    return advance


def stage_progress() -> ProgressCallback | None:
    """The progress of the stage running in this context (set by ``reporting``), or None."""
    return _STAGE.get()


@contextlib.contextmanager
def reporting(progress: ProgressCallback) -> Iterator[ProgressCallback]:
    """Make ``progress`` the stage's progress (``stage_progress()``) while the block runs."""
    token = _STAGE.set(progress)
    try:
        yield progress
    finally:
        _STAGE.reset(token)
