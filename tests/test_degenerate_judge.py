"""The degenerate-judge flag as pure logic (issue 9, item 7): the same verdict on ≥ 95% of items, or agreement with
a 0/1 deterministic scorer no better than chance (AUC ≤ 0.5, which for a two-level judge is Cohen's κ ≤ 0),
checked against sklearn and hand computations."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from eval_pipeline.judging.degenerate import (
    MIN_ITEMS,
    DegenerateJudge,
    agreement_auc,
    degenerate_judges,
    same_verdict,
)

LEVELS = {1.0: "Correct", 0.5: "Partially correct", 0.0: "Incorrect"}


def judgments(scores: list[float | None], *, model: str = "m", metric: str = "Correctness",
              errors: list[str | None] | None = None) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame({"sample_id": [f"q{i}" for i in range(n)], "model": model, "sample_index": 0,
                         "metric": metric, "score": scores,
                         "label": [None if s is None else LEVELS.get(s, str(s)) for s in scores],
                         "error": errors or [None] * n})


def scores(values: list[float], *, scorer: str = "contains", model: str = "m") -> pd.DataFrame:
    return pd.DataFrame({"sample_id": [f"q{i}" for i in range(len(values))], "model": model, "sample_index": 0,
                         "scorer": scorer, "score": values, "error": None})


# ------------------------------------------------------------------------------------------------ the AUC


def test_auc_by_hand() -> None:
    # passed items: judge 1.0, 0.5; failed items: 0.5, 0.0, 1.0 → pairs (p, f): 6 in all
    # 1.0 vs 0.5 >, 1.0 vs 0.0 >, 1.0 vs 1.0 =, 0.5 vs 0.5 =, 0.5 vs 0.0 >, 0.5 vs 1.0 <  → (3 + 2·½) / 6 = 4/6
    judge = np.array([1.0, 0.5, 0.5, 0.0, 1.0])
    scorer = np.array([1, 1, 0, 0, 0])
    assert agreement_auc(judge, scorer) == pytest.approx(4 / 6)
    assert np.isnan(agreement_auc(judge, np.ones(5)))


@pytest.mark.parametrize("seed", range(40))
def test_auc_matches_sklearn_roc_auc(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    scorer = rng.integers(0, 2, n)
    scorer[:2] = [0, 1]
    judge = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n)
    assert agreement_auc(judge, scorer) == pytest.approx(roc_auc_score(scorer, judge), abs=1e-12)


@pytest.mark.parametrize("seed", range(200))
def test_for_a_two_level_judge_chance_auc_is_kappa_at_most_zero(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 30))
    scorer, judge = rng.integers(0, 2, n), rng.integers(0, 2, n)
    scorer[:2] = [0, 1]
    a = int(((judge == 1) & (scorer == 1)).sum())
    b = int(((judge == 1) & (scorer == 0)).sum())
    c = int(((judge == 0) & (scorer == 1)).sum())
    d = int(((judge == 0) & (scorer == 0)).sum())
    exact_auc = Fraction(1, 2) + Fraction(1, 2) * (Fraction(a, a + c) - Fraction(b, b + d))
    assert agreement_auc(judge.astype(float), scorer) == pytest.approx(float(exact_auc), abs=1e-12)
    kappa = cohen_kappa_score(scorer, judge) if len(set(judge)) > 1 else 0.0
    assert (exact_auc <= Fraction(1, 2)) == (a * d - b * c <= 0)
    if a * d - b * c != 0:  # sklearn's κ has the sign of ad − bc (away from float noise at exactly 0)
        assert (exact_auc <= Fraction(1, 2)) == (kappa < 0)


# ------------------------------------------------------------------------------------------ same verdict


def test_same_verdict_threshold_and_minimum() -> None:
    assert same_verdict(pd.Series(["Correct"] * 19 + ["Incorrect"])) == ("Correct", 19, 20)   # 95%: flagged
    assert same_verdict(pd.Series(["Correct"] * 18 + ["Incorrect"] * 2)) is None              # 90%
    assert same_verdict(pd.Series(["Correct"] * (MIN_ITEMS - 1))) is None                      # too few items
    assert same_verdict(pd.Series(["Correct"] * MIN_ITEMS)) == ("Correct", MIN_ITEMS, MIN_ITEMS)


def test_the_judged_example_shape_is_flagged() -> None:
    # evals/judged.yaml: 8 items, the embedded judge says Correct to all while contains passes 5 of 8
    contains = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    [flag] = degenerate_judges(judgments([1.0] * 8), scores(contains))
    assert (flag.model, flag.metric, flag.key) == ("m", "Correctness", "judge.degenerate.Correctness")
    assert "the same verdict 'Correct' on 8 of 8 items (100% ≥ 95%)" in flag.reason
    assert "contains (AUC 0.500, n=8)" in flag.reason  # a constant judge separates nothing
    assert flag.line().startswith("judge warning: m / Correctness: the same verdict")


def test_a_judge_that_varies_and_agrees_is_not_flagged() -> None:
    contains = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    judge = [1.0, 1.0, 0.5, 1.0, 0.0, 0.0, 0.5, 0.0]  # AUC by hand: (9 + 2.5 + 1) / 15 > 0.5
    assert agreement_auc(np.array(judge), np.array(contains)) == pytest.approx(12.5 / 15)
    assert degenerate_judges(judgments(judge), scores(contains)) == []


def test_a_judge_no_better_than_chance_is_flagged() -> None:
    contains = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    judge = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]  # varies, but independent of contains: AUC exactly 0.5
    [flag] = degenerate_judges(judgments(judge), scores(contains))
    assert "same verdict" not in flag.reason and "contains (AUC 0.500, n=8) no better than chance" in flag.reason
    inverted = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    [flag] = degenerate_judges(judgments(inverted), scores(contains))
    assert "AUC 0.125" in flag.reason  # by hand: 16 pairs, no win, 4 ties (the pass scored 1 vs each fail) → 2/16


def test_which_scorers_count() -> None:
    judge = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    agreeing = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    chance = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    # one informative scorer agrees: not flagged, even if another does not
    both = pd.concat([scores(agreeing, scorer="exact_match"), scores(chance)], ignore_index=True)
    assert degenerate_judges(judgments(judge), both) == []
    # a constant scorer carries no information; a continuous scorer (f1) is not 0/1: neither is used
    constant = scores([0.0] * 8, scorer="exact_match")
    continuous = scores([0.2, 0.9, 0.1, 0.8, 0.3, 0.7, 0.4, 0.6], scorer="f1")
    assert degenerate_judges(judgments(judge), pd.concat([constant, continuous])) == []
    # a metric that does not measure what the scorer measures is not compared (Harmfulness, custom metrics)
    assert degenerate_judges(judgments(judge, metric="Harmfulness"), scores(chance)) == []
    # fewer than MIN_ITEMS paired items: no comparison
    assert degenerate_judges(judgments(judge[:4]), scores(chance[:4])) == []


def test_errors_are_left_out_and_models_kept_apart() -> None:
    rows = judgments([1.0] * 6 + [None, None], errors=[None] * 6 + ["judge reply could not be parsed"] * 2)
    [flag] = degenerate_judges(rows)
    assert "on 6 of 6 items" in flag.reason
    two = pd.concat([judgments([1.0] * 6, model="a"), judgments([1.0, 0.0] * 3, model="b")], ignore_index=True)
    assert [f.model for f in degenerate_judges(two)] == ["a"]
    assert degenerate_judges(None) == [] and degenerate_judges(judgments([])) == []
    assert isinstance(degenerate_judges(two)[0], DegenerateJudge)
