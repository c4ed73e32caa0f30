"""An injected clock for the tests: seconds since the epoch, advanced by hand (no test waits on the wall clock)."""

from __future__ import annotations


class SettableClock:
    """Returns ``now``; a test moves it (``clock.now += 130``) to pass a lease or a timeout."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
