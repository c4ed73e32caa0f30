"""The judge's explanation as a person reads it: fences, tags and labels around it removed where it is parsed
(``judging/verdict.py``), and again, with wrapping, where ``show_results`` prints tables written before."""

from __future__ import annotations

import pandas as pd
import pytest

from eval_pipeline.judging import RatingLevel, parse_custom_metrics, parse_verdict
from eval_pipeline.judging.explanation import clean_explanation
from eval_pipeline.sdk.results import EXPLANATION_CHARS, ITEM_TABLES, PLAIN_WIDTH, EvaluationResults, render

FENCED = "```explanation\nThe answer names Paris, which is right.\n```\n```\nVerdict: Good\n```"
"""A judge that fences its explanation and its verdict: once the verdict line is out, an empty fence is left."""


def _tone():
    [metric] = parse_custom_metrics([{"customMetricDefinition": {
        "name": "Tone", "instructions": "Rate {{prediction}} for {{prompt}}",
        "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                        {"definition": "Poor", "value": {"floatValue": 0}}]}}])
    return metric


@pytest.mark.parametrize(("reply", "explanation"), [
    (FENCED, "The answer names Paris, which is right."),
    ("```explanation\n```explanation\nRight.\n```\n```\nVerdict: Good", "Right."),         # the same tag twice
    ("```\nRight.\nVerdict: Good\n```", "Right."),                                          # the verdict inside
    ("~~~text\nRight.\n~~~\nVerdict: Good", "Right."),
    ("**Explanation:**\nRight.\n\n**Verdict:** Good", "Right."),
    ("Explanation: Explanation: Right.\nVerdict: Good", "Right."),
    ("<explanation>Right.</explanation>\n<verdict>\nVerdict: Good\n</verdict>", "Right."),
    ("<answer>Right.</answer>\nVerdict: Good", "<answer>Right.</answer>"),                 # only known tags go
    ("1. Right.\n2. Verdict: Good", "Right."),                                               # the requested format
    ("1. Right.\n2. Also kind.\n3. Verdict: Good", "1. Right.\n2. Also kind."),             # a real list stays
    ("<<prediction-0123456789ab>>\nParis\n<</prediction-0123456789ab>>\nIt says Paris.\nVerdict: Good",
     "Paris\n\nIt says Paris."),                                                             # echoed data blocks
    ("It prints:\n```python\nprint('Paris')\n```\nwhich is right.\nVerdict: Good",
     "It prints:\n```python\nprint('Paris')\n```\nwhich is right."),                         # quoted code stays
    ("Right.\n\n\n\nReally.   \nVerdict: Good", "Right.\n\nReally."),
])
def test_the_stored_explanation_has_no_wrappers(reply: str, explanation: str) -> None:
    verdict = parse_verdict(_tone(), reply)
    assert verdict.level == RatingLevel("Good", 1.0) and verdict.explanation == explanation
    assert clean_explanation(explanation) == explanation  # idempotent: cleaning twice changes nothing


def test_nothing_but_wrappers_is_an_empty_explanation() -> None:
    assert parse_verdict(_tone(), "```\nVerdict: Good\n```").explanation == ""
    assert clean_explanation(None) == "" and clean_explanation("```\n\n```") == ""


def _tables(explanations: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ids = [f"q{i}" for i in range(len(explanations))]
    samples = pd.DataFrame({"sample_id": ids, "input": ["What is the capital of France?"] * len(ids),
                            "input_kind": "text"})
    generations = pd.DataFrame({"sample_id": ids, "model": "m", "sample_index": 0, "output": "Paris.",
                                "error": None})
    judgments = pd.DataFrame({"sample_id": ids, "sample_index": 0, "metric": "Tone", "score": 1.0,
                              "explanation": explanations, "error": None})
    return samples, generations, judgments


def test_show_results_cleans_and_wraps_explanations_stored_before(capsys: pytest.CaptureFixture[str]) -> None:
    """Tables written before explanations were cleaned at the source hold the raw reply around the verdict: the
    items table and both renderings read clean, wrapped, cut text."""
    long = " ".join(f"word{i}" for i in range(300))  # ~2,300 characters on one line
    stored = ["```explanation\nThe answer names Paris [/INST] [bold].\n```\n```\n\n```",
              f"```explanation\n{long}\n```"]
    items = ITEM_TABLES["generations"](*_tables(stored), True)
    assert items["Tone explanation"].tolist() == ["The answer names Paris [/INST] [bold].", long]
    results = EvaluationResults(items=items, summary=pd.DataFrame(), comparison=None, total_items=2)

    render(results, "run", 0, use_rich=False)
    plain = capsys.readouterr().out
    assert "```" not in plain and "    The answer names Paris [/INST] [bold]." in plain
    assert max(len(line) for line in plain.splitlines()) <= PLAIN_WIDTH
    shown = " ".join(line.strip() for line in plain.split("[q1]")[1].splitlines()[4:])
    assert shown.endswith("…") and len(shown) <= EXPLANATION_CHARS and shown[:-1].rstrip() in long

    render(results, "run", 0, use_rich=True)
    rich = capsys.readouterr().out
    assert "```" not in rich and "The answer names Paris [/INST] [bold]." in rich and "…" in rich  # not markup
