"""A degenerate judge: one that says the same thing about everything, or whose verdicts track a deterministic
scorer of the same suite no better than chance. A warning, never a failure.

For each model × judge metric, over the items the judge rated (error rows left out), a judge is flagged when

1. **same verdict**: one level is the verdict on at least ``SAME_VERDICT_SHARE`` (95%) of the items, given at
   least ``MIN_ITEMS`` (5) rated items; or
2. **no better than chance**: the metric measures what a 0/1 scorer of the suite measures (``SCORER_COMPARABLE``:
   Correctness, against text-match or verifier scorers) and, on at least ``MIN_ITEMS`` items that both rated, for
   every such scorer whose scores vary on those items (a constant scorer carries no information), the judge's score
   separates the items the scorer passes from those it fails no better than chance: AUC ≤ 0.5, where AUC is the
   probability that a scorer-passed item gets a higher judge score than a scorer-failed one, ties counting half
   (the Mann–Whitney statistic over (passed, failed) pairs). For a two-level judge AUC − 0.5 = (TPR − FPR) / 2 has
   the sign of ad − bc in the 2×2 table, so the test is exactly Cohen's κ ≤ 0; for more levels it needs no
   threshold to binarize the judge.

The library has no Dagster in it: the assets, the CLI and the SDK call ``degenerate_judges`` on the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SAME_VERDICT_SHARE = 0.95
MIN_ITEMS = 5
SCORER_COMPARABLE: frozenset[str] = frozenset({"Correctness"})
"""Judge metrics that measure what a 0/1 deterministic scorer (contains, exact_match, code_exec, …) measures."""
CHANCE_AUC = 0.5
FLAG_PREFIX = "judge.degenerate."
"""MLflow tag / Dagster metadata key prefix: ``judge.degenerate.<metric>`` = the reason."""

ITEM_KEYS = ["sample_id", "model", "sample_index"]


@dataclass(frozen=True)
class DegenerateJudge:
    """A flagged judge metric for one model, and why."""

    model: str
    metric: str
    reason: str

    @property
    def key(self) -> str:
        return f"{FLAG_PREFIX}{self.metric}"

    def line(self) -> str:
        """One warning line: ``judge warning: <model> / <metric>: <reason>``."""
        return f"judge warning: {self.model} / {self.metric}: {self.reason}"


def agreement_auc(judge: np.ndarray, scorer: np.ndarray) -> float:
    """P(judge score of a scorer-passed item > that of a scorer-failed item) + ½ P(equal); NaN without both kinds.

    ``scorer`` holds 0/1 values; ``judge`` any numbers of the same length.
    """
    judge, passed = np.asarray(judge, dtype=float), np.asarray(scorer, dtype=float) == 1.0
    positives, negatives = judge[passed], judge[~passed]
    if not len(positives) or not len(negatives):
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    equal = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * equal) / (len(positives) * len(negatives)))


def same_verdict(labels: pd.Series) -> tuple[str, int, int] | None:
    """The most frequent verdict, its count and the number of verdicts, when it covers ≥ SAME_VERDICT_SHARE of at
    least MIN_ITEMS verdicts; else None."""
    labels = labels.dropna().astype(str)
    if len(labels) < MIN_ITEMS:
        return None
    counts = labels.value_counts(sort=True)
    top, count = str(counts.index[0]), int(counts.iloc[0])
    return (top, count, len(labels)) if count >= SAME_VERDICT_SHARE * len(labels) else None


def chance_agreement(rated: pd.DataFrame, scores: pd.DataFrame) -> str | None:
    """The reason rule 2 holds for one model × metric (``rated``: its non-error judgments), or None.

    ``scores``: the deterministic scorers' rows (``scorer``, ``score``, ``error``) for the same model.
    """
    usable = scores[scores["error"].isna() & scores["score"].notna()]
    results = []
    for scorer, rows in usable.groupby("scorer", sort=True):
        if not rows["score"].isin([0.0, 1.0]).all():
            continue  # not a 0/1 scorer
        paired = rated[[*ITEM_KEYS, "score"]].merge(rows[[*ITEM_KEYS, "score"]], on=ITEM_KEYS,
                                                    suffixes=("_judge", "_scorer"))
        if len(paired) < MIN_ITEMS or paired["score_scorer"].nunique() < 2:
            continue  # too few items, or a constant scorer: nothing to agree with
        auc = agreement_auc(paired["score_judge"].to_numpy(), paired["score_scorer"].to_numpy())
        results.append((str(scorer), auc, len(paired)))
    if not results or any(auc > CHANCE_AUC for _, auc, _ in results):
        return None
    parts = ", ".join(f"{scorer} (AUC {auc:.3f}, n={n})" for scorer, auc, n in results)
    return (f"agreement with {parts} no better than chance: the judge's scores do not rank the items the scorer "
            f"passes above those it fails (AUC ≤ {CHANCE_AUC}, i.e. Cohen's κ ≤ 0 for a two-level judge)")


def degenerate_judges(judgments: pd.DataFrame | None, scores: pd.DataFrame | None = None,
                      comparable: frozenset[str] = SCORER_COMPARABLE) -> list[DegenerateJudge]:
    """Every flagged model × judge metric in ``judgments`` (the JUDGMENTS table), in table order; ``scores``: the
    deterministic SCORES table of the same run (None: rule 2 is not checked)."""
    if judgments is None or judgments.empty:
        return []
    rated = judgments[judgments["error"].isna() & judgments["score"].notna()]
    flags = []
    for (model, metric), rows in rated.groupby(["model", "metric"], sort=False):
        reasons = []
        labels = rows["label"].where(rows["label"].notna(), rows["score"].map(lambda s: f"{s:g}"))
        top = same_verdict(labels)
        if top is not None:
            label, count, n = top
            reasons.append(f"the same verdict {label!r} on {count} of {n} items ({count / n:.0%} ≥ "
                           f"{SAME_VERDICT_SHARE:.0%})")
        if scores is not None and metric in comparable and not scores.empty:
            reason = chance_agreement(rows, scores[scores["model"] == model])
            if reason is not None:
                reasons.append(reason)
        if reasons:
            flags.append(DegenerateJudge(str(model), str(metric), "; ".join(reasons)))
    return flags


def flags_markdown(flags: list[DegenerateJudge]) -> str:
    """The flags as a markdown list (for Dagster metadata); "none" when there are none."""
    return "\n".join(f"- **{flag.model} / {flag.metric}**: {flag.reason}" for flag in flags) or "none"
