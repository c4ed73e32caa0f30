"""An execution's status: one step per Dagster run (each model's evaluation, then the comparison), and overall."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eval_pipeline.metrics.gates import GateResult

EXECUTION_TAG = "eval_pipeline/execution"
EVALUATOR_TAG = "eval_pipeline/evaluator"
TERMINAL = ("Succeeded", "Failed", "Stopped")
_RUN_STATUS = {
    "QUEUED": "Starting", "NOT_STARTED": "Starting", "STARTING": "Starting", "MANAGED": "Starting",
    "STARTED": "Executing", "CANCELING": "Stopping", "CANCELED": "Stopped", "FAILURE": "Failed",
    "SUCCESS": "Succeeded",
}


def step_status(dagster_status: str | None) -> str:
    """A Dagster run status (``SUCCESS``, ``STARTED``, …) as a step status; no run yet is ``Pending``."""
    return "Pending" if dagster_status is None else _RUN_STATUS.get(dagster_status, dagster_status.title())


@dataclass
class StepDetail:
    """One step: a model's evaluation run (``kind`` eval) or the comparison with the baseline (``compare``).

    Attributes:
        name: ``evaluate/<model>`` or ``compare/<base model>``.
        kind: ``eval`` or ``compare``.
        status: Pending, Starting, Executing, Stopping, Succeeded, Failed or Stopped.
        model: The model of an ``eval`` step (None for ``compare``).
        dagster_run_id: The step's Dagster run (None before it starts): open it in the Dagster UI.
        start_time: When the run started (Unix seconds).
        end_time: When it ended (Unix seconds; None while running).
        failure_reason: Why it failed (the failed stage or gate).
        gates: The release gates evaluated in this step's run; a failed one failed the step.
    """

    name: str
    kind: str
    status: str
    model: str | None = None
    dagster_run_id: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    failure_reason: str | None = None
    gates: list[GateResult] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the step has ended (Succeeded, Failed or Stopped)."""
        return self.status in TERMINAL


@dataclass
class EvaluationStatus:
    """Where an execution stands.

    Attributes:
        overall_status: Executing, Stopping (stop requested), Succeeded, Failed or Stopped.
        step_details: One ``StepDetail`` per step, in the order they run (each model, then the comparison).
        failure_reason: Why it failed (the failed steps' reasons), None otherwise.
    """

    overall_status: str
    step_details: list[StepDetail] = field(default_factory=list)
    failure_reason: str | None = None

    @property
    def terminal(self) -> bool:
        """Whether the execution has ended (Succeeded, Failed or Stopped)."""
        return self.overall_status in TERMINAL

    def progress(self) -> str:
        """``Executing: 1/3 steps done``."""
        done = sum(step.done for step in self.step_details)
        return f"{self.overall_status}: {done}/{len(self.step_details)} steps done"


@dataclass(frozen=True)
class RunInfo:
    """What a status needs of one Dagster run, from the instance or from GraphQL."""

    run_id: str
    job_name: str
    partition: str | None
    status: str
    start_time: float | None = None
    end_time: float | None = None


def planned_steps(suite: str, models: list[str], baseline: str | None) -> list[dict[str, Any]]:
    """The steps in the order they run: the models (baseline last, so the comparison follows it), then compare."""
    order = [m for m in models if m != baseline] + ([baseline] if baseline in models else [])
    steps = [{"name": f"evaluate/{m}", "kind": "eval", "model": m, "job": f"{suite}_eval"} for m in order]
    if baseline is not None:
        steps.append({"name": f"compare/{baseline}", "kind": "compare", "model": None, "job": f"{suite}_compare"})
    return steps


def derive_status(record: dict[str, Any], runs: list[RunInfo]) -> EvaluationStatus:
    """Steps from the runs carrying the execution's tag (newest run per step), overall state from the record."""
    details = []
    errors: dict[str, str] = record.get("step_errors") or {}
    gates: dict[str, list[dict[str, Any]]] = record.get("step_gates") or {}
    for step in record["steps"]:
        matching = [r for r in runs if r.job_name == step["job"]
                    and (step["kind"] != "eval" or r.partition == step["model"])]
        run = max(matching, key=lambda r: r.start_time or 0.0) if matching else None
        details.append(StepDetail(
            name=step["name"], kind=step["kind"], model=step["model"], status=step_status(run and run.status),
            dagster_run_id=run and run.run_id, start_time=run and run.start_time, end_time=run and run.end_time,
            failure_reason=errors.get(step["name"]),
            gates=[GateResult.from_dict(gate) for gate in gates.get(step["name"], [])]))
    state = record.get("state", "Executing")
    if state not in TERMINAL and record.get("stop_requested"):
        state = "Stopping"
    reason = record.get("failure_reason")
    if state == "Failed" and not reason:
        reason = next((f"{s.name}: {s.failure_reason}" for s in details if s.failure_reason), None)
    return EvaluationStatus(overall_status=state, step_details=details, failure_reason=reason)
