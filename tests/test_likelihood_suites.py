"""Multiple-choice and perplexity suites through the whole pipeline on the tiny model, checked against the scoring
library called directly (itself checked against plain torch in test_likelihood.py), and their bad input."""

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.data.formats import load_samples
from eval_pipeline.errors import EvalInputError
from eval_pipeline.execution import run_suite
from eval_pipeline.inference.likelihood import LoglikelihoodRequest
from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
from eval_pipeline.instance import local_instance
from eval_pipeline.metrics.likelihood import corpus_perplexity, count_words, multiple_choice
from eval_pipeline.suites import load_suite

QUESTIONS = [
    ("The sky is", ["blue", "a green frog", "loud"], 0),
    ("Two plus two is", ["four", "seven hundred", "fish"], 0),
    ("Cats say", ["woof", "meow", "a long sentence about nothing"], 1),
    ("Water is", ["dry", "wet"], 1),
    ("The sun rises in the", ["east", "west", "north", "south"], 0),
]
TEXTS = ["the quick brown fox jumps over the lazy dog", "hello world, hello again",
         "numbers 1 2 3 4 5 and more numbers", "a short one", "ünïcödé text counts bytes, not characters"]


def project(folder: Path, tiny_model_dir: str, task: str) -> Path:
    (folder / "evals").mkdir(parents=True, exist_ok=True)
    if task == "multiple_choice":
        rows = [{"id": f"q{i}", "question": q, "choices": c, "answer": a, "category": "even" if i % 2 == 0 else "odd"}
                for i, (q, c, a) in enumerate(QUESTIONS)]
        data = folder / "mc.jsonl"
    else:
        rows = [{"id": f"t{i}", "text": t, "category": "even" if i % 2 == 0 else "odd"} for i, t in enumerate(TEXTS)]
        data = folder / "corpus.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "evals" / f"{task}.yaml"
    path.write_text(f"suite: {task}_suite\ntask: {task}\ndataset: {{uri: {data.name}}}\n"
                    f"models:\n  - {{name: tiny, backend: local, model: {tiny_model_dir}, batch_size: 4}}\n"
                    "breakdown_keys: [category]\n")
    return path


def overall(metrics: pd.DataFrame, metric: str) -> pd.Series:
    return metrics[(metrics["metric"] == metric) & metrics["breakdown_key"].isna()].iloc[0]


def test_multiple_choice_suite(eval_home: Path, tiny_model_dir: str) -> None:
    result = run_suite(load_suite(project(eval_home.parent / "p", tiny_model_dir, "multiple_choice")),
                       local_instance())
    assert result.success, result.models[0].error
    scorer = LocalLikelihoodScorer(tiny_model_dir, batch_size=1)
    expected = []
    for question, choices, answer in QUESTIONS:
        scores = scorer.loglikelihood([LoglikelihoodRequest(f"{question} ", c) for c in choices])
        expected.append(multiple_choice(scores, choices, answer))
    for metric in ("acc", "acc_norm"):
        row = overall(result.metrics, metric)
        assert row["value"] == pytest.approx(sum(e[metric] for e in expected) / len(expected))
        assert row["n"] == len(QUESTIONS) and row["errors"] == 0
    assert set(result.metrics["breakdown_value"].dropna()) == {"even", "odd"}


@pytest.mark.parametrize("model_fixture", ["tiny_model_dir", "tiny_no_bos_model_dir"])
def test_perplexity_suite(eval_home: Path, model_fixture: str, request: pytest.FixtureRequest) -> None:
    """With and without a BOS token: every token of each text scored; word_perplexity beside the others."""
    model_dir = request.getfixturevalue(model_fixture)
    result = run_suite(load_suite(project(eval_home.parent / "p", model_dir, "perplexity")), local_instance())
    assert result.success, result.models[0].error
    scorer = LocalLikelihoodScorer(model_dir)
    expected = corpus_perplexity(scorer.rolling_loglikelihood(TEXTS), [count_words(t) for t in TEXTS])
    assert set(expected) == {"token_perplexity", "bits_per_byte", "byte_perplexity", "word_perplexity",
                             "next_token_accuracy"}
    for metric, value in expected.items():
        row = overall(result.metrics, metric)
        assert row["value"] == pytest.approx(value, rel=1e-5), metric
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    generations = pd.read_parquet(result.models[0].outputs["generations"])
    assert generations["n_bytes"].tolist() == [len(t.encode()) for t in TEXTS]
    assert generations["n_tokens"].tolist() == [len(scorer.tokenizer(t, add_special_tokens=False)["input_ids"])
                                                for t in TEXTS]
    loglik = generations["logprob"].sum()
    assert overall(result.metrics, "bits_per_byte")["value"] == pytest.approx(
        -loglik / (generations["n_bytes"].sum() * math.log(2)), rel=1e-9)
    assert overall(result.metrics, "word_perplexity")["value"] == pytest.approx(
        math.exp(-loglik / sum(len(re.split(r"\s+", t)) for t in TEXTS)), rel=1e-9)


def test_bad_likelihood_input_names_the_row(tmp_path: Path) -> None:
    bad = tmp_path / "mc.jsonl"
    bad.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": 0}) + "\n"
                   + json.dumps({"question": "q", "choices": ["a", "b"], "answer": 2}) + "\n")
    with pytest.raises(EvalInputError, match=r"mc.jsonl:2: field 'answer': index 2 is out of range for 2 choices"):
        load_samples(str(bad), "multiple_choice")
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"fine line\nsecond line \xff\xfe broken\n")
    with pytest.raises(EvalInputError, match=r"corpus.txt:2: not UTF-8"):
        load_samples(str(corpus), "text")


def test_likelihood_tasks_need_a_likelihood_backend(tmp_path: Path) -> None:
    path = tmp_path / "evals" / "x.yaml"
    path.parent.mkdir()
    path.write_text("suite: x\ntask: perplexity\ndataset: {uri: c.jsonl}\n"
                    "models:\n  - {name: b, backend: bedrock, model: amazon.nova-micro-v1:0}\n")
    with pytest.raises(Exception, match="log-likelihoods"):
        load_suite(path)


def test_dry_run_of_a_multiple_choice_suite_counts_one_request_per_choice(eval_home: Path, tiny_model_dir: str) -> None:
    from eval_pipeline.execution import plan_suite

    suite = load_suite(project(eval_home.parent / "p", tiny_model_dir, "multiple_choice"))
    [plan] = plan_suite(suite)
    assert plan.requests == sum(len(c) for _, c, _ in QUESTIONS) and plan.max_tokens_out == 0 and plan.cached == 0
    assert run_suite(suite, local_instance()).success
    [plan] = plan_suite(suite)  # after a run, every scoring request is in the cache
    assert plan.cached == plan.requests and plan.to_send == 0


def test_a_failing_scorer_gives_error_rows_for_its_items_only() -> None:
    from eval_pipeline.inference.likelihood import ContinuationScore, TextScore
    from eval_pipeline.inference.likelihood_runner import CHUNK_ITEMS, run_choice_likelihoods, run_text_likelihoods

    class FailsOnce:
        backend = "flaky"

        def __init__(self) -> None:
            self.calls = 0

        def _fail_first(self) -> None:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("device lost")

        def loglikelihood(self, requests):  # type: ignore[no-untyped-def]
            self._fail_first()
            return [ContinuationScore(-float(len(r.continuation)), False, 1) for r in requests]

        def rolling_loglikelihood(self, texts):  # type: ignore[no-untyped-def]
            self._fail_first()
            return [TextScore(-1.0, 2, len(t.encode()), 1) for t in texts]

    n = CHUNK_ITEMS + 3
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "input": ["q"] * n,
                            "choices": [json.dumps(["ab", "a"])] * n, "row_hash": "h"})
    for run in (run_choice_likelihoods, run_text_likelihoods):
        frame = run(samples, "m", FailsOnce())
        errors = frame["error"].notna().tolist()
        assert errors == [True] * CHUNK_ITEMS + [False] * 3 and len(frame) == n
        assert frame["error"].iloc[0] == "flaky: RuntimeError: device lost"
    ok = run_choice_likelihoods(samples, "m", FailsOnce()).tail(3)
    assert (ok["output"] == "a").all()  # the shorter choice is the likelier one here
