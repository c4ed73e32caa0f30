"""Many rollouts: every task × ``eval_group_size`` group members, ``concurrency`` at a time, within a time budget.

``stopping_condition`` is the whole evaluation's budget in seconds, measured on an injectable clock from the moment
``run_rollouts`` starts: a rollout not started before the deadline is an error row (``budget``), and one running
when it passes ends at its next turn with a ``budget`` row. Finished rollouts are saved to a ``RolloutStore`` the
moment each finishes; a re-run takes them from the store and runs only the missing (or errored) ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from eval_pipeline.agents.environment import Agent, AgentTask, Environment
from eval_pipeline.agents.rollout import RolloutIdentity, RolloutSettings, run_rollout
from eval_pipeline.agents.rollout_store import RolloutStore, rollout_id
from eval_pipeline.agents.spec import MAX_STOPPING_CONDITION_S
from eval_pipeline.agents.user_simulator import UserSimulator
from eval_pipeline.data.schemas import ROLLOUTS
from eval_pipeline.errors import EvalInputError


@dataclass(frozen=True)
class RolloutStats:
    """What a run did: rollouts in all, taken from the store, run now, and error rows (of which budget)."""

    total: int
    stored: int
    ran: int
    errors: int
    budget: int

    def summary(self) -> str:
        return (f"{self.total} rollouts: {self.stored} from the store, {self.ran} run, {self.errors} errors "
                f"({self.budget} out of time)")


@dataclass(frozen=True)
class RolloutRun:
    """The ``rollouts`` table (tasks in order, group members in order) and the run's counts."""

    frame: pd.DataFrame
    stats: RolloutStats


def task_row_hash(task: AgentTask) -> str:
    """A task's hash when the samples table gives none: its id, prompt and data."""
    payload = {"task_id": task.task_id, "prompt": task.prompt, "data": dict(task.data)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def check_stopping_condition(seconds: float) -> float:
    """The budget, or EvalInputError when it is outside (0, 259200] seconds."""
    if not 0 < seconds <= MAX_STOPPING_CONDITION_S:
        raise EvalInputError(f"stopping_condition must be in (0, {MAX_STOPPING_CONDITION_S}] seconds (72 hours), "
                             f"got {seconds}", field="stopping_condition")
    return seconds


def run_rollouts(tasks: Sequence[AgentTask], *, model: str, make_agent: Callable[[AgentTask, int], Agent],
                 make_environment: Callable[[], Environment], agent_identity: Mapping[str, Any],
                 environment: str, environment_identity: Mapping[str, Any] | None = None,
                 eval_group_size: int = 1, settings: RolloutSettings | None = None,
                 user: UserSimulator | None = None, concurrency: int = 8,
                 stopping_condition: float = 86_400, clock: Callable[[], float] = time.monotonic,
                 store: RolloutStore | None = None, row_hashes: Mapping[str, str] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> RolloutRun:
    """Every (task, group member) rollout, from the store when finished before, else run now (a fresh agent from
    ``make_agent(task, member)`` and a fresh environment from ``make_environment()`` per rollout).
    ``environment`` is the label rows carry; ``environment_identity`` (default: the label) is what goes into the
    rollout id. ``on_progress(done, total)`` is called as rollouts finish."""
    check_stopping_condition(stopping_condition)
    settings = settings or RolloutSettings()
    if eval_group_size < 1 or concurrency < 1:
        raise EvalInputError(f"eval_group_size and concurrency must be at least 1 (got {eval_group_size}, "
                             f"{concurrency})", field="eval_group_size" if eval_group_size < 1 else "concurrency")
    if user is not None:
        _check_user_instructions(tasks, user)
    deadline = clock() + stopping_condition
    hashes = {task.task_id: (row_hashes or {}).get(task.task_id) or task_row_hash(task) for task in tasks}
    ids_settings = {**dataclasses.asdict(settings), "user": user.identity() if user is not None else None}
    env_identity = dict(environment_identity) if environment_identity is not None else {"label": environment}
    jobs = [RolloutIdentity(sample_id=task.task_id, model=model, sample_index=member,
                            rollout_id=rollout_id(hashes[task.task_id], agent_identity, env_identity, ids_settings,
                                                  member),
                            environment=environment, row_hash=hashes[task.task_id])
            for task in tasks for member in range(eval_group_size)]
    by_id = {task.task_id: task for task in tasks}
    stored = store.get_many(job.rollout_id for job in jobs) if store is not None else {}
    rows: dict[str, dict[str, Any]] = {}
    done, total, lock = len([j for j in jobs if j.rollout_id in stored]), len(jobs), threading.Lock()
    if on_progress:
        on_progress(done, total)

    def out_of_time() -> bool:
        return clock() >= deadline

    def one(job: RolloutIdentity) -> None:
        nonlocal done
        if out_of_time():
            row = budget_row(job)
        else:
            task = by_id[job.sample_id]
            row = run_rollout(task, make_agent(task, job.sample_index), make_environment(), identity=job,
                              settings=settings, user=user, out_of_time=out_of_time)
            if store is not None:
                store.put(row)
        with lock:
            rows[job.rollout_id] = row
            done += 1
            if on_progress:
                on_progress(done, total)

    missing = [job for job in jobs if job.rollout_id not in stored]
    if missing:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(missing)), thread_name_prefix="rollout") as pool:
            for future in [pool.submit(one, job) for job in missing]:
                future.result()
    ordered = [dict(stored[j.rollout_id]) if j.rollout_id in stored else rows[j.rollout_id] for j in jobs]
    frame = pd.DataFrame(ordered, columns=ROLLOUTS.names)
    errors = frame["error"].notna()
    stats = RolloutStats(total=total, stored=len(jobs) - len(missing), ran=len(missing), errors=int(errors.sum()),
                         budget=int((frame["error_source"] == "budget").sum()))
    return RolloutRun(frame=frame, stats=stats)


def budget_row(job: RolloutIdentity) -> dict[str, Any]:
    """The row of a rollout the time budget left no room to start."""
    return {"sample_id": job.sample_id, "model": job.model, "sample_index": job.sample_index,
            "rollout_id": job.rollout_id, "environment": job.environment, "turns": "[]", "messages": "[]",
            "num_turns": 0, "reward": None, "success": None, "termination": "budget", "tokens_in": 0,
            "tokens_out": 0, "latency_s": 0.0, "cached": False, "request_hashes": "[]", "row_hash": job.row_hash,
            "error": "the evaluation's time budget (stopping_condition) ran out before the rollout started",
            "error_source": "budget"}


def _check_user_instructions(tasks: Sequence[AgentTask], user: UserSimulator) -> None:
    for task in tasks:
        try:
            user.instructions(task)
        except KeyError as exc:
            raise EvalInputError(f"{exc.args[0]}: a suite with a simulated user needs it on every task",
                                 field=user.instructions_field) from None
