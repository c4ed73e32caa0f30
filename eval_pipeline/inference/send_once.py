"""Concurrent runs of the same requests send each once in total.

A run claims the missing keys it will send (a row per key in the cache's ``claims`` table, with its owner and a
lease it renews while sending). Keys another live run has claimed are waited for, polling the cache, and the wait
is said in the log. A claim is taken over when its owner died (a process of this host that is gone) or its lease
ran out, and it is free again when its owner released it after a failure: failures are never cached, so the
waiting run then sends those requests itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
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
            with _Heartbeat(cache, how):
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


class _Heartbeat:
    """Renews the run's claims on a background thread while it sends (a local model's batch can take minutes)."""

    def __init__(self, cache: RequestCache, how: SendOnce) -> None:
        self.cache, self.how = cache, how
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claims-heartbeat", daemon=True)

    def _run(self) -> None:
        interval = self.how.heartbeat_s or self.how.lease_s / 4
        while not self._stop.wait(interval):
            try:
                self.cache.renew(self.how.owner, self.how.lease_s)
            except Exception:  # a missed heartbeat only risks a duplicate request, never a wrong answer
                _log.debug("claim heartbeat failed", exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
