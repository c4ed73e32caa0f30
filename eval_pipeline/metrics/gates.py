"""Release gates over one model's evaluation: the error-rate gate, its verdict and its reason.

A gate's verdict is computed here, once, from the tables that feed the metrics; the Dagster asset check, the MLflow
run status, the CLI and the SDK all report this one result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

ERROR_RATE_GATE = "error_rate"
GATE_METADATA_KEY = "gate"
"""The asset check's metadata entry holding the whole result as JSON (read back by the CLI and the SDK)."""


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict for one model: ``observed`` against ``allowed``; ``reason`` says why it failed."""

    check: str
    model: str
    passed: bool
    observed: float | None
    allowed: float
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(check=str(data["check"]), model=str(data["model"]), passed=bool(data["passed"]),
                   observed=None if data.get("observed") is None else float(data["observed"]),
                   allowed=float(data["allowed"]), reason=data.get("reason"), detail=dict(data.get("detail") or {}))

    def summary(self) -> str:
        """``error_rate failed for m: …`` or ``error_rate passed for m: 0.000 ≤ 0.000``."""
        if self.passed:
            return f"{self.check} passed for {self.model}: {self.observed:.3f} ≤ {self.allowed:.3f}"
        return f"{self.check} failed for {self.model}: {self.reason}"


def error_rate_gate(model: str, generations: pd.DataFrame, scores: pd.DataFrame, judgments: pd.DataFrame | None,
                    metrics: pd.DataFrame, max_error_rate: float, stage: str = "generations") -> GateResult:
    """The share of the metric inputs that errored must not exceed ``max_error_rate``.

    The metric inputs are the score rows (generation × scorer) and the judgment rows (generation × judge metric)
    of ``model``: a failed generation is an error row in each of them, a failed scorer or judge call one row.
    A generation that failed and left no row downstream counts as one more errored input. The gate also fails
    when nothing was scored, and when an overall metric has n = 0 (every item errored): such a metric says nothing.
    ``stage`` names the production table in the reason (``generations``, ``rollouts``).
    """
    generations = _own(generations, model)
    scores = _own(scores, model)
    judgments = _own(judgments, model) if judgments is not None else scores.iloc[0:0]
    failed_generations = _failed_keys(generations)
    score_failed, judgment_failed = scores["error"].notna().to_numpy(), judgments["error"].notna().to_numpy()
    scoring_errors = int((score_failed & ~_keys(scores).isin(failed_generations).to_numpy()).sum())
    judgment_errors = int((judgment_failed & ~_keys(judgments).isin(failed_generations).to_numpy()).sum())
    downstream = set(_keys(scores)) | set(_keys(judgments))
    orphaned = len(failed_generations - downstream)
    rows = len(scores) + len(judgments) + orphaned
    errors = int(score_failed.sum()) + int(judgment_failed.sum()) + orphaned
    observed = errors / rows if rows else None
    detail: dict[str, Any] = {
        "rows": rows, "errors": errors, "generations": len(generations),
        "generation_errors": len(failed_generations), "scoring_errors": scoring_errors,
        "judgment_errors": judgment_errors, "unmeasured_metrics": _unmeasured(metrics, model), "stage": stage}
    reasons = []
    if observed is None:
        reasons.append("nothing was scored (no score or judgment rows)")
    elif observed > max_error_rate:
        reasons.append(f"{errors} of {rows} metric inputs errored (error_rate {observed:.3f} > allowed "
                       f"{max_error_rate:.3f}; {_stages(detail)})")
    if detail["unmeasured_metrics"]:
        reasons.append(f"n = 0 (every item errored) for {', '.join(detail['unmeasured_metrics'])}")
    return GateResult(check=ERROR_RATE_GATE, model=model, passed=not reasons, observed=observed,
                      allowed=float(max_error_rate), reason="; ".join(reasons) or None, detail=detail)


def _own(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    if "model" not in frame.columns or frame.empty:
        return frame
    return frame[frame["model"].astype(str) == model]


def _keys(frame: pd.DataFrame) -> pd.Series:
    """``sample_id|sample_index`` per row (which generation a row belongs to)."""
    if frame.empty:
        return pd.Series([], dtype=object)
    index = frame["sample_index"] if "sample_index" in frame.columns else pd.Series(0, index=frame.index)
    return frame["sample_id"].astype(str) + "|" + index.fillna(0).astype(int).astype(str)


def _failed_keys(generations: pd.DataFrame) -> set[str]:
    if generations.empty or "error" not in generations.columns:
        return set()
    return set(_keys(generations[generations["error"].notna()]))


def _unmeasured(metrics: pd.DataFrame, model: str) -> list[str]:
    """Overall metrics of ``model`` computed from no item (n = 0)."""
    if metrics.empty:
        return []
    overall = _own(metrics, model)
    overall = overall[overall["breakdown_key"].isna()]
    zero = overall[overall["n"].map(lambda n: n is not None and not (isinstance(n, float) and math.isnan(n))
                                    and int(n) == 0)]
    return sorted(set(zero["metric"].astype(str)))


def _stages(detail: dict[str, Any]) -> str:
    return (f"{detail['generation_errors']} of {detail['generations']} {detail.get('stage', 'generations')} failed, "
            f"{detail['scoring_errors']} scoring errors, {detail['judgment_errors']} judgment errors")
