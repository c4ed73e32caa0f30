import math

import pandas as pd
import pytest
from rouge_score import rouge_scorer

from eval_pipeline.errors import EvalInputError
from eval_pipeline.scoring import text
from eval_pipeline.scoring.registry import score_generations, validate_scorers
from eval_pipeline.suites.spec import ScorerSpec

PAIRS = [
    ("The capital of France is Paris.", "Paris"),
    ("paris", "Paris"),
    ("It is the Pacific Ocean", "the Pacific Ocean"),
    ("a b c d e", "a c e g"),
    ("Leonardo da Vinci painted it", "Leonardo da Vinci"),
    ("nothing in common", "Tokyo"),
    ("the cat sat on the mat", "the cat is on the mat"),
    ("", "x"),
]


def test_normalize_follows_squad() -> None:
    assert text.normalize("  The Answer, is: A cat! ") == "answer is cat"


@pytest.mark.parametrize(("prediction", "reference"), PAIRS)
def test_rouge_l_matches_the_rouge_score_package(prediction: str, reference: str) -> None:
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert text.rouge_l(prediction, reference) == pytest.approx(expected, abs=1e-12)


def test_token_f1_hand_derived() -> None:
    # normalized: "cat sat on mat" vs "cat is on mat": overlap 3, p = 3/4, r = 3/4
    assert text.token_f1("the cat sat on the mat", "the cat is on the mat") == pytest.approx(0.75)
    # "paris" vs "capital of france is paris": overlap 1, p = 1, r = 1/5 -> 2*(1*0.2)/(1.2)
    assert text.token_f1("Paris", "The capital of France is Paris") == pytest.approx(2 * 0.2 / 1.2)
    assert text.token_f1("x x y", "x y y") == pytest.approx(2 / 3)  # multiset overlap 2
    assert text.token_f1("", "") == 1.0 and text.token_f1("b", "") == 0.0


def test_exact_match_and_contains() -> None:
    assert text.exact_match("The Paris.", "paris") == 1.0
    assert text.exact_match("Paris, France", "paris") == 0.0
    assert text.contains("The capital is Paris.", "paris") == 1.0
    assert text.contains("Parisian", "paris") == 0.0  # word boundaries
    assert text.contains("anything", "") == 0.0


def test_regex_extract_takes_the_last_match_and_its_group() -> None:
    assert text.regex_extract("first 3 then answer: 42", r"answer:\s*(\d+)") == "42"
    assert text.regex_extract("1 then 2 then 3", r"\d") == "3"
    assert text.regex_extract("no digits", r"\d") is None


def test_score_generations_keeps_every_row() -> None:
    samples = pd.DataFrame({"sample_id": ["a", "b", "c"], "reference": ["4", None, "x"]})
    generations = pd.DataFrame({
        "sample_id": ["a", "b", "c"], "model": "m", "sample_index": 0,
        "output": ["The answer is 4", "y", None], "request_hash": ["h1", "h2", "h3"],
        "error": [None, None, "timeout"],
    })
    specs = [ScorerSpec(name="exact_match"), ScorerSpec(name="num", type="regex_match", pattern=r"(\d+)")]
    scores = score_generations(samples, generations, specs)
    assert len(scores) == 6
    by = scores.set_index(["sample_id", "scorer"])
    assert by.loc[("a", "exact_match"), "score"] == 0.0
    assert by.loc[("a", "num"), "score"] == 1.0 and by.loc[("a", "num"), "extracted"] == "4"
    assert "no reference answer" in by.loc[("b", "exact_match"), "error"]
    assert math.isnan(by.loc[("c", "num"), "score"]) and "generation failed: timeout" in by.loc[("c", "num"), "error"]


def test_validate_scorers() -> None:
    with pytest.raises(EvalInputError, match="field 'scorers\\[0\\]': unknown scorer 'bleu'"):
        validate_scorers([ScorerSpec(name="bleu")], "s.yaml")
    with pytest.raises(EvalInputError, match="needs a 'pattern'"):
        validate_scorers([ScorerSpec(name="r", type="regex_match")])
    with pytest.raises(EvalInputError, match="bad regular expression"):
        validate_scorers([ScorerSpec(name="r", type="regex_match", pattern="(")])
