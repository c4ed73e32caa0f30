"""kill -9 in the middle of 200 rollouts, then re-run: every rollout once, no finished rollout repeated.

Real processes: the fake OpenAI server runs in its own process (so it counts requests across both runs), the
rollouts run in ``tests.rollout_kill_worker`` with the pipeline's request cache and rollout store, and the worker
is SIGKILLed once the store holds at least 40 finished rollouts; the same command then runs to completion.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.fakes import FakeLLMServerProcess
from tests.rollout_kill_worker import CONCURRENCY, SERVED_MODEL, TASKS, TURNS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
KILL_AT = 40


def stored_ids(store: Path) -> set[str]:
    """Task ids of the rollouts in the store (read-only; the file may not exist yet)."""
    if not store.exists():
        return set()
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)) as db:
        try:
            return {json.loads(row)["sample_id"] for (row,) in db.execute("SELECT row FROM rollouts")}
        except sqlite3.OperationalError:  # the table is not created yet
            return set()


def cached_calls(cache: Path) -> int:
    """Model calls saved in the request cache (read-only; 0 before the file or its table exists)."""
    if not cache.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=10)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def wait_idle(fake: FakeLLMServerProcess, timeout_s: float = 10.0) -> dict[str, Any]:
    """The fake's stats once nothing is in flight and the counters have settled."""
    deadline, previous = time.monotonic() + timeout_s, None
    while True:
        stats = fake.stats(recent=0)
        if (stats["in_flight"] == 0 and previous is not None and stats["completed"] == previous["completed"]) \
                or time.monotonic() > deadline:
            return stats
        previous = stats
        time.sleep(0.05)


def test_kill_9_during_200_rollouts_then_resume(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = home / "cache" / "rollouts.sqlite"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PYTEST_CURRENT_TEST")}
    env.update(EVAL_PIPELINE_HOME=str(home), PYTHONUNBUFFERED="1")
    with FakeLLMServerProcess("--latency", "0.1", "--known-model", SERVED_MODEL) as fake:
        def command(run: int) -> list[str]:
            return [sys.executable, "-m", "tests.rollout_kill_worker", fake.url, str(tmp_path / f"resets{run}"),
                    str(tmp_path / f"episodes{run}"), str(tmp_path / f"rollouts{run}.parquet")]

        # 1. killed once the store holds KILL_AT rollouts and the cache holds calls of rollouts still running
        #    (so the re-run has interrupted rollouts whose earlier calls it must take from the cache)
        proc = subprocess.Popen(command(1), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        try:
            cache = home / "cache" / "generations.sqlite"
            while (done := len(stored_ids(store))) < KILL_AT or cached_calls(cache) <= done * TURNS:
                if proc.poll() is not None:
                    pytest.fail(f"the run ended before the kill: {proc.communicate()[1][-3000:]}")
                assert time.monotonic() < deadline, "the store and the cache did not fill in 60 s"
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        finished_before = stored_ids(store)
        with contextlib.closing(sqlite3.connect(home / "cache" / "generations.sqlite", timeout=10)) as db:
            cached_after_kill = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        first = wait_idle(fake)
        assert KILL_AT <= len(finished_before) < TASKS

        # 2. the same command, to completion
        second_run = subprocess.run(command(2), cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert second_run.returncode == 0, second_run.stderr[-4000:]
        second = fake.stats(recent=0)

    # every rollout finished exactly once in the final table, without errors
    frame = pd.read_parquet(tmp_path / "rollouts2.parquet")
    assert sorted(frame["sample_id"]) == [f"task{i:03d}" for i in range(TASKS)]
    assert frame["rollout_id"].is_unique and frame["error"].isna().all()
    assert (frame["termination"] == "done").all() and (frame["reward"] == 1.0).all()
    assert (frame["num_turns"] == TURNS).all()

    # no rollout finished before the kill was reset again; the second run reset exactly the others
    resets2 = lines(tmp_path / "resets2")
    assert not finished_before & set(resets2)
    assert sorted(resets2) == sorted(set(frame["sample_id"]) - finished_before)
    episodes = lines(tmp_path / "episodes1") + lines(tmp_path / "episodes2")
    assert set(episodes) == set(frame["sample_id"])
    # An episode can end twice only when SIGKILL landed between the environment's last step and the store write.
    assert len(episodes) - TASKS <= CONCURRENCY

    # At the fake: the model calls of the interrupted rollouts were served from the cache. Every model call was
    # asked for, and the only requests asked twice are the ones in flight when SIGKILL landed (the fake counts a
    # reply it wrote to the dead client's socket, or one that arrived but was not yet in the cache): the killed
    # process never had them, so they must be asked again. At most one per worker; everything saved is not.
    first_done, second_done = collections.Counter(first["completed"]), collections.Counter(second["completed"])
    assert len(second_done) == TASKS * TURNS
    repeated = {key for key, count in second_done.items() if count > 1}
    assert all(count <= 2 for count in second_done.values())
    assert repeated <= set(first_done) and len(repeated) <= CONCURRENCY, len(repeated)
    interrupted = set(lines(tmp_path / "resets1")) - finished_before
    saved = cached_after_kill
    assert saved - len(finished_before) * TURNS > 0  # calls of rollouts the kill interrupted, saved in the cache
    sent_by_second = sum((second_done - first_done).values())
    assert sent_by_second == TASKS * TURNS - saved  # the second run asked only for what the cache lacked
    assert len(repeated) == sum(first_done.values()) - saved
    print(f"killed with {len(finished_before)} rollouts stored; {len(interrupted)} interrupted; "
          f"{sum(first_done.values())} model calls in run 1, {sent_by_second} in run 2, {len(repeated)} asked twice")
