"""Concurrent runs of the same requests send each once in total.

A run claims the missing keys it will send (a row per key in the cache's ``claims`` table, with its owner and a
lease it renews while sending). Keys another live run has claimed are waited for, polling the cache, and the wait
is said in the log. A claim is taken over when its owner died (a process of this host that is gone) or its lease
ran out, and it is free again when its owner released it after a failure: failures are never cached, so the
waiting run then sends those requests itself.

The leases are renewed by one background thread per process (``HEARTBEATS``), started on first use and asleep
while nothing is sent: a send registers its owner (cache and owner) for the time it sends, and each registered
owner's claims are renewed every heartbeat interval. A one-request call (an agent's turn) starts no thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from eval_pipeline.inference.cache import RequestCache, process_owner

_log = logging.getLogger(__name__)


@dataclass
class SendOnce:
    """How a run coordinates with others on one cache file; ``sleep`` and the cache's clock are injectable.
    The ``owner`` is unique per instance (host, pid and a nonce): share one only within one run."""

    owner: str = field(default_factory=process_owner)
    lease_s: float = 120.0
    """A claim not renewed for this long is free (its owner is presumed gone, e.g. on another host)."""
    poll_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    heartbeat_s: float | None = None
    """How often a sending run renews its claims (real time); default a quarter of the lease."""


def send_once(cache: RequestCache, keys: Sequence[str], send: Callable[[list[str]], None], *,
              on_arrived: Callable[[set[str]], None], coordination: SendOnce | None = None,
              log: Callable[[str], None] | None = None) -> None:
    """Get every key into the cache (or failed) once across runs: ``send(keys)`` sends and stores the keys this
    run claimed; ``on_arrived(keys)`` is told which keys another run stored meanwhile (read them from the cache)."""
    how = coordination or SendOnce()  # a fresh owner per call: two calls in one process are two runs
    pending = list(dict.fromkeys(keys))
    said: int | None = None
    while pending:
        mine, theirs = cache.claim(pending, how.owner, how.lease_s)
        stored = set(pending) - set(mine) - set(theirs)
        if stored:
            on_arrived(stored)
        if mine:
            with HEARTBEATS.renewing(cache, how):
                try:
                    send(mine)
                finally:
                    cache.release(mine, how.owner)  # what is left unstored failed: free for a waiting run
        elif theirs:
            if said != len(theirs):
                message = (f"waiting for {len(theirs)} request{'s' if len(theirs) != 1 else ''} another run is "
                           f"sending (cache {cache.path})")
                _log.warning(message)
                if log is not None:
                    log(message)
                said = len(theirs)
            how.sleep(how.poll_s)
        pending = theirs


@dataclass(eq=False)
class _Sender:
    """An owner sending on one cache: how many of its sends are in flight, and when its claims are next renewed."""

    cache: RequestCache
    owner: str
    lease_s: float
    interval_s: float
    due: float
    sends: int = 1
    renewing: bool = False


class Heartbeats:
    """Renews the claims of every owner that is sending, on one background thread (a local model's batch can take
    minutes; a remote call's retries too). The first renewal of an owner comes one interval after it started
    sending; an owner with several sends in flight (concurrent rollouts sharing a ``SendOnce``) is renewed until
    the last one ends, and never after: ``renewing`` returns only once no renewal of its owner is under way."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._senders: dict[tuple[int, str], _Sender] = {}
        self._thread: threading.Thread | None = None
        self._wake_at = float("inf")

    @contextlib.contextmanager
    def renewing(self, cache: RequestCache, how: SendOnce) -> Iterator[None]:
        """Renew ``how.owner``'s claims in ``cache`` while the block runs."""
        key = (id(cache), how.owner)  # the entry holds the cache: its id is not reused while registered
        with self._changed:
            sender = self._senders.get(key)
            if sender is None:
                interval = how.heartbeat_s or how.lease_s / 4
                sender = self._senders[key] = _Sender(cache, how.owner, how.lease_s, interval,
                                                      self._clock() + interval)
                self._start()
                if sender.due < self._wake_at:  # else the thread wakes in time anyway: no context switch
                    self._changed.notify_all()
            else:
                sender.sends += 1
        try:
            yield
        finally:
            with self._changed:
                sender.sends -= 1
                if sender.sends == 0:
                    if self._senders.get(key) is sender:
                        del self._senders[key]
                    while sender.renewing:  # the caller may release the claims or close the cache next
                        self._changed.wait()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="claims-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                now = self._clock()
                due = [s for s in self._senders.values() if s.due <= now]
                if not due:
                    self._wake_at = min((s.due for s in self._senders.values()), default=float("inf"))
                    self._changed.wait(None if self._wake_at == float("inf") else self._wake_at - now)
                    continue
                for sender in due:
                    sender.renewing, sender.due = True, now + sender.interval_s
            for sender in due:
                try:
                    sender.cache.renew(sender.owner, sender.lease_s)
                except Exception:  # a missed heartbeat only risks a duplicate request, never a wrong answer
                    _log.debug("claim heartbeat failed", exc_info=True)
            with self._changed:
                for sender in due:
                    sender.renewing = False
                self._changed.notify_all()


HEARTBEATS = Heartbeats()
"""The process's heartbeat thread (a forked child gets its own, started when it first sends)."""


def _after_fork() -> None:
    global HEARTBEATS
    HEARTBEATS = Heartbeats()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
