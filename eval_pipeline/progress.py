"""Progress of long work: a bar in the terminal and a log line every tenth of the way."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


class Progress:
    """Call with (done, total); draws a tqdm bar on stderr and logs at each 10% step and at the end. ``unit`` names
    what is counted on the bar (``req`` for requests, ``rollout`` for rollouts)."""

    def __init__(self, description: str, log: Callable[[str], None] | None = None, *, bar: bool = True,
                 unit: str = "req") -> None:
        self.description, self.log, self.show_bar, self.unit = description, log, bar, unit
        self._bar: tqdm | None = None
        self._logged_step = -1

    def __call__(self, done: int, total: int) -> None:
        if self.show_bar and self._bar is None and done < total:  # nothing left to do (all cached): no bar
            self._bar = tqdm(total=total, desc=self.description, unit=self.unit, file=sys.stderr, leave=False,
                             dynamic_ncols=True, mininterval=0.5)
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        step = 10 if total == 0 else (done * 10) // total
        if self.log is not None and step > self._logged_step:
            self._logged_step = step
            self.log(f"{self.description}: {done}/{total} ({100 if total == 0 else done * 100 // total}%)")
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
