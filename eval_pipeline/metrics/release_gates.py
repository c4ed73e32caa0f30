"""Release gates: a model against a pinned baseline on the same items, one verdict over the suite's gated metrics.

Per gated metric, the items are paired on ``sample_id`` (an item's score is the mean over its samples: sample
indices are exchangeable draws, so pairing sample i of one model with sample i of the other would pair nothing in
particular). The existing paired procedure (``paired_difference``: exact McNemar when every score is at an end of
the range, else the paired t-test) gives the difference, its two-sided (1 − α) interval and its p-value. The gate
itself is one-sided, and uses the one-sided version of that same procedure, shifted to the threshold X:

- ``max_regression: X`` (X ≥ 0): H1 is "the model is worse by more than X" (Δ < −X). The gate FAILS when H1 is shown
  (Holm-adjusted one-sided p < α); a model that cannot be shown to regress beyond X passes — so at a small n almost
  everything passes, which is why the minimum detectable effect is reported beside it.
- ``min_improvement: X`` (X ≥ 0): H1 is Δ > X. The gate PASSES only when H1 is shown (Holm-adjusted p < α).

One-sided p-values: paired t: p = P(T_{n−1} ≤ (d̄ + X)/se) (regression) or P(T_{n−1} ≥ (d̄ − X)/se) (improvement);
when every difference is equal, p is 0 if that difference lies beyond the threshold, else 1. McNemar (conditional on
the D = b + c discordant pairs, as the two-sided procedure is): Δ = w·(b − c)/n = w·D/n·(2π − 1) with b ~ Bin(D, π),
so Δ < −X ⇔ π < π₀ = (1 − X·n/(D·w))/2 and p = P(Bin(D, π₀) ≤ b) (1 when π₀ ≤ 0 or D = 0); Δ > X ⇔ π > π₁ =
(1 + X·n/(D·w))/2 and p = P(Bin(D, π₁) ≥ b) (1 when π₁ ≥ 1 or D = 0). These are the exact duals of the one-sided
Clopper–Pearson bounds the two-sided interval is built from; at X = 0 they are half the two-sided p on the side
of the observed difference. Holm's step-down runs over the one-sided p-values of the suite's gated metrics (the
family is one model against the baseline); a metric with no p-value (n < 2) counts as p = 1, so m stays the number
of gated metrics.

Unpaired items (scored by only one side, or errored on both) are reported per metric, never dropped silently: more
than ``max_unpaired`` of them fails that metric, because a model that errors exactly on the hard items would
otherwise look better on the rest (the error-rate gate counts errors; this gate needs the same items).

Minimum detectable effect (MDE): the paired-t (normal) formula with the observed SD of the per-item differences,
MDE = (z_{1−α/m} + z_{0.8})·s_d/√n — the distance beyond the threshold at which the one-sided test at Holm's
strictest level α/m has power 0.8. For a 0/1 metric s_d² = (b + c)/(n − 1) − (b − c)²/(n(n − 1)), the
discordant-pair variance, so the one formula serves both kinds. NaN when n < 2 or the differences do not vary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import bdtr, bdtrc, ndtri, stdtr

from eval_pipeline.metrics.gates import GateResult
from eval_pipeline.metrics.multiplicity import holm
from eval_pipeline.metrics.paired_difference import paired_difference
from eval_pipeline.metrics.ranges import SCORE_RANGE, ValueRange

RELEASE_GATE = "release_gate"
POWER = 0.8
Rule = Literal["max_regression", "min_improvement"]


@dataclass(frozen=True)
class MetricRule:
    """One gated metric: ``max_regression`` (fail on a significant regression beyond ``threshold``) or
    ``min_improvement`` (pass only on a significant improvement beyond ``threshold``)."""

    metric: str
    rule: Rule
    threshold: float


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    rule: str
    threshold: float
    n: int
    model_value: float | None
    baseline_value: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    """Two-sided, H0: Δ = 0 (the paired procedure's own p-value)."""
    test: str
    p_gate: float | None
    """One-sided, against the threshold (module doc)."""
    p_holm: float | None
    mde: float | None
    unpaired: int
    model_only: list[str]
    baseline_only: list[str]
    passed: bool
    reason: str | None


@dataclass(frozen=True)
class PairedItems:
    x: np.ndarray
    """The model's per-item scores, in ``sample_ids`` order."""
    y: np.ndarray
    sample_ids: list[str]
    model_only: list[str]
    """Items the model scored and the baseline did not (errored or absent)."""
    baseline_only: list[str]
    neither: list[str]
    """Items present on some side whose every score errored."""

    @property
    def unpaired(self) -> int:
        return len(self.model_only) + len(self.baseline_only) + len(self.neither)


def pair_items(model_scores: pd.DataFrame, baseline_scores: pd.DataFrame, metric: str) -> PairedItems:
    """One metric's per-item scores of both sides, paired on ``sample_id`` (the mean over an item's samples; error
    rows and NaN scores left out of the mean, and reported when an item has no score on a side)."""
    model_items, model_seen = _per_item(model_scores, metric)
    baseline_items, baseline_seen = _per_item(baseline_scores, metric)
    both = sorted(set(model_items.index) & set(baseline_items.index))
    seen = model_seen | baseline_seen
    return PairedItems(
        x=model_items.reindex(both).to_numpy(dtype=float), y=baseline_items.reindex(both).to_numpy(dtype=float),
        sample_ids=both, model_only=sorted(set(model_items.index) - set(both)),
        baseline_only=sorted(set(baseline_items.index) - set(both)),
        neither=sorted(seen - set(model_items.index) - set(baseline_items.index)))


def _per_item(scores: pd.DataFrame, metric: str) -> tuple[pd.Series, set[str]]:
    rows = scores[scores["scorer"].astype(str) == metric]
    seen = set(rows["sample_id"].astype(str))
    ok = rows[rows["score"].notna() & (rows["error"].isna() if "error" in rows.columns else True)]
    return ok.groupby(ok["sample_id"].astype(str))["score"].mean(), seen


def one_sided_p(x: np.ndarray, y: np.ndarray, rule: Rule, threshold: float,
                value_range: ValueRange = SCORE_RANGE) -> float:
    """The one-sided p-value of the gate's alternative (Δ < −threshold for ``max_regression``, Δ > threshold for
    ``min_improvement``) by the procedure ``paired_difference`` picks (module doc); NaN below n = 2 for the t-test."""
    result = paired_difference(x, y, value_range)
    n = result.n
    if n == 0:
        return math.nan
    if result.test == "mcnemar":
        return _mcnemar_one_sided(int(result.b or 0), int(result.c or 0), n, rule, threshold, value_range.width)
    diffs = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if n < 2:
        return math.nan
    mean, stderr = float(diffs.mean()), float(diffs.std(ddof=1)) / math.sqrt(n)
    beyond = mean < -threshold if rule == "max_regression" else mean > threshold
    if stderr == 0:
        return 0.0 if beyond else 1.0
    if rule == "max_regression":
        return float(stdtr(n - 1, (mean + threshold) / stderr))
    return float(stdtr(n - 1, -(mean - threshold) / stderr))


def _mcnemar_one_sided(b: int, c: int, n: int, rule: Rule, threshold: float, width: float) -> float:
    discordant = b + c
    if discordant == 0:
        return 1.0
    shift = threshold * n / (discordant * width)
    if rule == "max_regression":
        pi0 = (1.0 - shift) / 2
        return 1.0 if pi0 <= 0 else float(bdtr(b, discordant, pi0))
    pi1 = (1.0 + shift) / 2
    if pi1 >= 1:
        return 1.0
    return 1.0 if b == 0 else float(bdtrc(b - 1, discordant, pi1))


def minimum_detectable_effect(diffs: np.ndarray, alpha: float, power: float = POWER) -> float:
    """(z_{1−α} + z_power)·s_d/√n: the shift beyond the threshold a one-sided test at level ``alpha`` detects with
    ``power`` (paired-t formula, normal approximation, observed SD); NaN when n < 2 or s_d = 0."""
    diffs = np.asarray(diffs, dtype=float)
    n = diffs.size
    if n < 2:
        return math.nan
    sd = float(diffs.std(ddof=1))
    if sd == 0:
        return math.nan
    return float((ndtri(1 - alpha) + ndtri(power)) * sd / math.sqrt(n))


def release_gate(model: str, baseline: str, model_scores: pd.DataFrame, baseline_scores: pd.DataFrame,
                 rules: Sequence[MetricRule], *, alpha: float = 0.05, max_unpaired: int = 0,
                 value_ranges: Mapping[str, ValueRange] | None = None) -> GateResult:
    """``model`` against ``baseline`` over ``rules`` (module doc). The score tables have the scores table's shape
    (``sample_id``, ``scorer``, ``score``, ``error``; judgments as ``judgment_scores`` gives them). ``observed`` is
    the number of failing metrics, ``allowed`` 0; ``detail['metrics']`` holds each metric's verdict."""
    ranges = value_ranges or {}
    m = len(rules)
    paired = [pair_items(model_scores, baseline_scores, rule.metric) for rule in rules]
    p_gate = [one_sided_p(p.x, p.y, r.rule, r.threshold, ranges.get(r.metric, SCORE_RANGE))
              for p, r in zip(paired, rules, strict=True)]
    p_holm = holm([1.0 if math.isnan(p) else p for p in p_gate]) if m else np.empty(0)
    verdicts = [_verdict(rule, items, p, float(ph), alpha, m, max_unpaired, ranges.get(rule.metric, SCORE_RANGE))
                for rule, items, p, ph in zip(rules, paired, p_gate, p_holm, strict=True)]
    failed = [v for v in verdicts if not v.passed]
    detail: dict[str, Any] = {
        "baseline": baseline, "alpha": alpha, "power": POWER, "max_unpaired": max_unpaired,
        "metrics": {v.metric: asdict(v) for v in verdicts}}
    reason = "; ".join(f"{v.metric}: {v.reason}" for v in failed) or None
    detail["summary"] = f"{RELEASE_GATE} {'passed' if not failed else 'failed'} for {model} against {baseline}: " + \
        "; ".join(_line(v) for v in verdicts)
    return GateResult(check=RELEASE_GATE, model=model, passed=not failed, observed=float(len(failed)),
                      allowed=0.0, reason=reason, detail=detail)


def baseline_gate(baseline: str, rules: Sequence[MetricRule], *, alpha: float = 0.05) -> GateResult:
    """The baseline's own partition: it is the reference, so its gate passes trivially (and says so)."""
    return GateResult(check=RELEASE_GATE, model=baseline, passed=True, observed=0.0, allowed=0.0,
                      detail={"baseline": baseline, "alpha": alpha, "power": POWER, "metrics": {},
                              "note": f"{baseline} is the suite's baseline: nothing to compare it with, the gate "
                                      f"passes trivially ({', '.join(r.metric for r in rules)} not tested)",
                              "summary": f"{RELEASE_GATE} passed for {baseline}: it is the baseline (passes "
                                         "trivially)"})


def _verdict(rule: MetricRule, items: PairedItems, p_gate: float, p_holm: float, alpha: float, m: int,
             max_unpaired: int, value_range: ValueRange) -> MetricVerdict:
    n = len(items.sample_ids)
    result = paired_difference(items.x, items.y, value_range, 1 - alpha) if n else None
    mde = minimum_detectable_effect(items.x - items.y, alpha / max(m, 1))
    significant = p_holm < alpha
    reasons = []
    if n == 0:
        reasons.append("no item scored by both the model and the baseline")
    elif rule.rule == "max_regression" and significant:
        reasons.append(f"regression {result.diff:+.4f} (CI [{result.ci_low:+.4f}, {result.ci_high:+.4f}]) is "
                       f"significantly beyond the allowed {-rule.threshold:+.4f} "
                       f"(one-sided p_holm {p_holm:.3g} < α {alpha:g}, n = {n})")
    elif rule.rule == "min_improvement" and not significant:
        reasons.append(f"{result.diff:+.4f} (CI [{result.ci_low:+.4f}, {result.ci_high:+.4f}]) is not significantly "
                       f"above the required {rule.threshold:+.4f} (one-sided p_holm {p_holm:.3g} ≥ α {alpha:g}, "
                       f"n = {n}, MDE {_fmt(mde)})")
    if items.unpaired > max_unpaired:
        reasons.append(f"{items.unpaired} items not scored on both sides ({len(items.model_only)} only by the "
                       f"model, {len(items.baseline_only)} only by the baseline, {len(items.neither)} by neither; "
                       f"at most {max_unpaired} allowed)")
    return MetricVerdict(
        metric=rule.metric, rule=rule.rule, threshold=rule.threshold, n=n,
        model_value=_num(items.x.mean()) if n else None, baseline_value=_num(items.y.mean()) if n else None,
        diff=_num(result.diff) if result else None, ci_low=_num(result.ci_low) if result else None,
        ci_high=_num(result.ci_high) if result else None, p_value=_num(result.p_value) if result else None,
        test=result.test if result else "", p_gate=_num(p_gate), p_holm=_num(p_holm) if n else None, mde=_num(mde),
        unpaired=items.unpaired, model_only=items.model_only[:20], baseline_only=items.baseline_only[:20],
        passed=not reasons, reason="; ".join(reasons) or None)


def _line(verdict: MetricVerdict) -> str:
    """``exact_match +0.0167 [-0.0500, +0.0833] vs ≥ -0.0200: p_holm 1, MDE 0.0612, n = 60``."""
    if verdict.diff is None:
        return f"{verdict.metric}: no paired items"
    bound = f"≥ {0.0 - verdict.threshold:+.4f}" if verdict.rule == "max_regression" else f"> {verdict.threshold:+.4f}"
    # max_regression X: Δ must not be shown below −X; min_improvement X: Δ must be shown above X
    mde = "undefined" if verdict.mde is None else f"{verdict.mde:.4f}"
    p_holm = "n/a" if verdict.p_holm is None else f"{verdict.p_holm:.3g}"
    low, high = (("n/a" if v is None else f"{v:+.4f}") for v in (verdict.ci_low, verdict.ci_high))
    return (f"{verdict.metric} {verdict.diff:+.4f} [{low}, {high}] vs {bound}: p_holm {p_holm}, MDE {mde}, "
            f"n = {verdict.n}")


def _num(value: float) -> float | None:
    """A JSON-safe number: NaN becomes None."""
    value = float(value)
    return None if math.isnan(value) else value


def _fmt(value: float) -> str:
    return "undefined (the differences do not vary)" if math.isnan(value) else f"{value:.4f}"
