"""Only an explicit verdict counts (issue 9, item 3): adversarial judge replies whose last verdict line names no
level (quoted answer text, negations, hedges, empty or several verdict lines) are parse errors, and through the
judging runner error rows that keep the reply; markdown-bold verdict lines still count. Builtin and custom rating
scales and the pairwise A/B/tie verdicts alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.judging import (
    VerdictParseError,
    builtin_metric,
    parse_custom_metrics,
    parse_preference,
    parse_verdict,
)
from eval_pipeline.judging.run import run_judgments, run_pairwise

CORRECTNESS = builtin_metric("Correctness")
HELPFULNESS = builtin_metric("Helpfulness")


def _custom(levels: list[tuple[str, dict[str, Any]]]) -> Any:
    return parse_custom_metrics([{"customMetricDefinition": {
        "name": "Custom", "instructions": "Rate it.\nResponse: {{prediction}}",
        "ratingScale": [{"definition": d, "value": v} for d, v in levels]}}])[0]


GOOD_NOT_GOOD = _custom([("Good", {"floatValue": 1}), ("Not good", {"floatValue": 0})])
HIGH_MEDIUM_LOW = _custom([("High", {"stringValue": "h"}), ("Medium", {"stringValue": "m"}),
                           ("Low", {"stringValue": "l"})])
ONE_TO_FIVE = _custom([(str(i), {"floatValue": i}) for i in range(1, 6)])


def label(metric: Any, reply: str) -> str:
    return parse_verdict(metric, reply).level.definition


# --------------------------------------------------------------------------------------- no explicit verdict


@pytest.mark.parametrize("reply", [
    # quoted text from the judged answer holds level names; the judge's own verdict names none
    'The response claims "this is Correct" and even ends with "Verdict (quoted): Correct".\nVerdict: wrong',
    "The answer says: Correct! The capital is Lyon.\nVerdict: the response is wrong",
    # negations of a level
    "Verdict: not correct", "Verdict: Not Correct.", "Verdict: **not** correct", "Verdict: isn't correct",
    "Verdict: Correct? No.", "Verdict: Correct - not really", "Verdict: never correct",
    # a verdict label with nothing usable after it
    "Verdict:", "Verdict: ", "**Verdict:**", "Verdict: ???", "Verdict: N/A", "Verdict: see above",
    "I think it is correct.\nVerdict:\n\n", "Verdict:\nThe response is correct",
    # several verdict lines: the last one decides, even when it is unusable
    "Verdict: Correct\nOn reflection it is wrong.\nVerdict: not correct",
    "Verdict: Incorrect\nVerdict: unsure",
    # hedges between levels
    "Verdict: Correct or Partially correct", "Verdict: Correct/Incorrect", "Verdict: Correct (maybe Incorrect)",
    # no verdict line at all: mentions are never read as a verdict
    "The answer is correct.", "Correct", "This is not correct, it is incorrect.",
    # a number naming no single level, or contradicting itself
    "Verdict: 7", "Verdict: 2 or 0", "Verdict: 2 - Incorrect",
])
def test_correctness_replies_without_an_explicit_verdict_are_errors(reply: str) -> None:
    with pytest.raises(VerdictParseError) as info:
        parse_verdict(CORRECTNESS, reply)
    assert "Correctness" in str(info.value)


@pytest.mark.parametrize(("reply", "expected"), [
    ("Looks right.\n**Verdict:** Correct", "Correct"),
    ("Looks right.\n**Verdict: Correct**", "Correct"),
    ("Looks right.\n__Verdict__: *Correct*", "Correct"),
    ("Looks right.\n**Verdict:**\nCorrect", "Correct"),
    ("### Final verdict: `Incorrect`", "Incorrect"),
    ("Verdict: Partially correct", "Partially correct"),
    ("Verdict: Partially", "Partially correct"),
    ("Verdict: Incorrect, the capital is Paris", "Incorrect"),
    ("Verdict: Correct - matches the reference", "Correct"),
    # several verdict lines: the last one wins
    ("Verdict: Correct\nWait, the year is wrong.\nVerdict: Incorrect", "Incorrect"),
    # quoted level names before an explicit verdict do not matter
    ('The response says "Incorrect answers are common" but gets the fact right.\nVerdict: Correct', "Correct"),
    # a Verdict line outranks Rating/Score/Answer lines anywhere in the reply
    ("Verdict: Incorrect\nScore: the response is correct", "Incorrect"),
    ("Answer: Correct\nScore: 0", "Incorrect"),
    ("Verdict: 2", "Correct"), ("Rating: 1/2", "Partially correct"),
])
def test_explicit_correctness_verdicts(reply: str, expected: str) -> None:
    assert label(CORRECTNESS, reply) == expected


def test_float_scale_numbers() -> None:
    assert label(HELPFULNESS, "Rating: 4/4") == "Very helpful"
    assert label(HELPFULNESS, "Rating: 3 out of 4") == "Helpful"
    assert label(HELPFULNESS, "Score: 3 - Helpful") == "Helpful"
    for reply in ("Rating: 3 or 4", "Score: 3 - Very helpful", "Score: not 3", "Verdict: No"):
        with pytest.raises(VerdictParseError):
            parse_verdict(HELPFULNESS, reply)


def test_custom_scale_with_a_negated_level() -> None:
    assert label(GOOD_NOT_GOOD, "Verdict: Good") == "Good"
    assert label(GOOD_NOT_GOOD, "Verdict: Not good") == "Not good"
    assert label(GOOD_NOT_GOOD, "Verdict: not GOOD.") == "Not good"
    assert label(GOOD_NOT_GOOD, "Verdict: Not good, it is curt") == "Not good"
    for reply in ("Verdict: Good, not good", "Verdict: Good? No", "The answer 'Good' is quoted.\nVerdict: unclear"):
        with pytest.raises(VerdictParseError):
            parse_verdict(GOOD_NOT_GOOD, reply)


def test_custom_string_scale() -> None:
    assert label(HIGH_MEDIUM_LOW, "Rating: **Medium**") == "Medium"
    assert parse_verdict(HIGH_MEDIUM_LOW, "Verdict: low").score == 0.0
    for reply in ("Verdict: not high", "Verdict: High to Medium", "Verdict: 1", "It is high quality."):
        with pytest.raises(VerdictParseError):
            parse_verdict(HIGH_MEDIUM_LOW, reply)


def test_custom_numeric_definitions() -> None:
    assert label(ONE_TO_FIVE, "Verdict: 4") == "4"
    assert label(ONE_TO_FIVE, "Verdict: 4/5") == "4"
    assert label(ONE_TO_FIVE, "Verdict: 4 out of 5") == "4"
    for reply in ("Verdict: 4 or 5", "Verdict: between 3 and 4", "Verdict: not 4", "Verdict: 6"):
        with pytest.raises(VerdictParseError):
            parse_verdict(ONE_TO_FIVE, reply)


def test_the_notebook_metric() -> None:
    from tests.notebook_metrics import custom_metric_dict

    positive = parse_custom_metrics([custom_metric_dict])[0]
    reply = 'The response opens with "Good news!" but is dismissive overall.\nVerdict: negative'
    with pytest.raises(VerdictParseError):
        parse_verdict(positive, reply)
    assert label(positive, 'It opens with "Good news!" but is dismissive.\n**Verdict:** Poor') == "Poor"


# ----------------------------------------------------------------------------------------------- pairwise


@pytest.mark.parametrize("reply", [
    "Verdict: not A", "Verdict: A\nVerdict: not A", "Verdict: Not a tie, B wins", "Verdict: A is worse than B",
    "Verdict: A or B", "Verdict: B\nVerdict: hard to say", "Answer A says 'Verdict: B'. Both are fine.\nVerdict:",
    "B is better.", "Verdict: A, equally clear", "Verdict: isn't B", "Verdict: A is less accurate",
    "Verdict: B loses",
])
def test_pairwise_replies_without_an_explicit_verdict_are_errors(reply: str) -> None:
    with pytest.raises(VerdictParseError):
        parse_preference(reply)


@pytest.mark.parametrize(("reply", "expected"), [
    ("**Verdict:** B", "B"), ("**Verdict: A**", "A"), ("Verdict: a tie", "tie"), ("Verdict: neither is better", "tie"),
    ("Verdict: Neither A nor B is better", "tie"), ("Verdict: A\nOn reflection B is right.\nVerdict: B", "B"),
    ("Answer A is shorter.\nVerdict: A", "A"), ("**Verdict:**\nB", "B"), ("Verdict: A is better", "A"),
])
def test_explicit_pairwise_verdicts(reply: str, expected: str) -> None:
    assert parse_preference(reply) == expected


# ------------------------------------------------------------------------------------ through the runner


class _Replies:
    """A judge sampler whose replies come from a list, in request order."""

    backend = "scripted"

    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "replies": self.replies}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        return [Completion(output=self.replies[int(r.sample_id[1:])]) for r in requests]


def _tables(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"q{i}" for i in range(n)]
    samples = pd.DataFrame({"sample_id": ids, "input": ["What is the capital of France?"] * n, "input_kind": "text",
                            "reference": ["Paris"] * n, "category": None, "metadata": None, "row_hash": ids})
    generations = pd.DataFrame({"sample_id": ids, "model": "m", "sample_index": 0,
                                "output": [f"Lyon ({i})" for i in range(n)], "error": None})
    return samples, generations


def test_runner_keeps_the_reply_of_a_verdict_it_cannot_read() -> None:
    replies = ['The answer says "Correct!" yet names Lyon.\nVerdict: not correct',
               "The answer is correct.", "Reasoning.\n**Verdict:** Incorrect"]
    samples, generations = _tables(len(replies))
    frame, stats = run_judgments(samples, generations, [CORRECTNESS], _Replies(replies), GenerationParams(),
                                 judge_model="scripted")
    frame = frame.set_index("sample_id")
    for sample_id in ("q0", "q1"):
        row = frame.loc[sample_id]
        assert pd.isna(row["score"]) and pd.isna(row["label"])
        assert row["error"].startswith("judge reply could not be parsed")
        assert row["explanation"] == replies[int(sample_id[1:])]
    assert frame.loc["q2", "label"] == "Incorrect" and frame.loc["q2", "score"] == 0.0
    assert stats.errors == 2


def test_pairwise_runner_turns_an_unreadable_order_into_an_error_row() -> None:
    samples, model = _tables(1)
    baseline = model.assign(model="base", output="Paris")
    frame = run_pairwise(samples, model, baseline, _Replies(["Verdict: A\nVerdict: not A"]), GenerationParams(),
                         judge_model="scripted")
    assert frame["error"].iloc[0].startswith("judge reply could not be parsed") and pd.isna(frame["winner"].iloc[0])
