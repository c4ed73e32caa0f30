"""Perplexity, bits per byte and word perplexity on a tokenizer WITHOUT a BOS token (Qwen-style), as lm-eval 0.4
computes them: every token of a text is scored, the first conditioned on EOS (lm-eval's ``prefix_token_id``), and
every byte and every word of the text counts. The reference is written here: one teacher-forced forward pass over
``[EOS] + tokens`` per text, and the formulas applied by hand to those log-probabilities."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pandas as pd
import pytest

from eval_pipeline.evaluations import EncodingEvaluation, PerplexityComparisonEvaluation, PerplexityEvaluation
from eval_pipeline.inference.likelihood import LoglikelihoodRequest
from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.metrics.corpus import aggregate_corpus

TEXTS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "x",
    "def add(a, b):\n    return a + b\n",
    "  héllo   wörld ✓ ",
    "Water boils at 100 degrees Celsius at sea level. " * 3,
]
CHOICE_ITEMS = [("", ["Paris is", "Rome"], 0), ("", ["x", "Water boils at 100 degrees"], 1)]


@pytest.fixture(scope="module")
def sampler(tiny_no_bos_model_dir: str) -> Iterator[LocalSampler]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sampler = LocalSampler(tiny_no_bos_model_dir, device="cpu", batch_size=4)
    assert sampler.tokenizer.bos_token_id is None and sampler.tokenizer.eos_token_id is not None
    yield sampler
    torch.set_num_threads(threads)


def teacher_forced(sampler: LocalSampler, text: str) -> tuple[list[float], list[bool]]:
    """Per token of ``text``: log p(token | EOS, tokens before it) from one plain forward pass over
    ``[EOS] + tokens`` in float64, and whether it is the argmax."""
    import torch

    tokens = sampler.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[sampler.tokenizer.eos_token_id, *tokens]])
    with torch.no_grad():
        logits = sampler.model(input_ids=ids).logits[0, :-1].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return ([float(logprobs[i, t]) for i, t in enumerate(tokens)],
            [int(logits[i].argmax()) == t for i, t in enumerate(tokens)])


def lm_eval_words(text: str) -> int:
    return len(re.split(r"\s+", text))


def test_every_token_is_scored_and_conditioned_on_eos(sampler: LocalSampler) -> None:
    scores = LocalLikelihoodScorer(sampler, batch_size=3).rolling_loglikelihood(TEXTS)
    for text, score in zip(TEXTS, scores, strict=True):
        logprobs, hits = teacher_forced(sampler, text)
        assert score.n_tokens == len(logprobs) == len(sampler.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert score.logprob == pytest.approx(math.fsum(logprobs), abs=1e-4)
        assert score.n_correct == sum(hits)
        assert score.n_bytes == len(text.encode("utf-8"))


class Corpus(PerplexityEvaluation):
    name = "corpus"

    def __len__(self) -> int:
        return len(TEXTS)

    def get(self, indx: int) -> str:
        return TEXTS[indx]


def test_perplexity_evaluation_matches_lm_eval_by_hand(sampler: LocalSampler) -> None:
    per_text = [teacher_forced(sampler, text)[0] for text in TEXTS]
    loglik = math.fsum(math.fsum(values) for values in per_text)
    n_tokens = sum(map(len, per_text))
    n_bytes = sum(len(text.encode("utf-8")) for text in TEXTS)
    n_words = sum(map(lm_eval_words, TEXTS))
    result = Corpus().outcome(sampler, return_intermediates=True)
    assert result.metrics["token_perplexity"] == pytest.approx(math.exp(-loglik / n_tokens), rel=1e-5)
    assert result.metrics["bits_per_byte"] == pytest.approx(-loglik / (n_bytes * math.log(2)), rel=1e-5)
    assert result.metrics["byte_perplexity"] == pytest.approx(math.exp(-loglik / n_bytes), rel=1e-5)
    assert result.metrics["word_perplexity"] == pytest.approx(math.exp(-loglik / n_words), rel=1e-5)
    assert result.rows["n_words"].tolist() == [lm_eval_words(text) for text in TEXTS]
    assert Corpus()(sampler) == pytest.approx(math.exp(-loglik / n_tokens), rel=1e-5)
    # the tokens the model read: EOS, then every token of the text
    for (ids, mask), values in zip(result.intermediates or [], per_text, strict=True):
        assert ids[0] == sampler.tokenizer.eos_token_id and int(mask.sum()) == len(values) + 1


def test_corpus_metrics_of_a_perplexity_suite_match_by_hand(sampler: LocalSampler) -> None:
    """``aggregate_corpus`` (the pipeline's metrics stage) on the scorer's figures: word_perplexity beside the rest,
    words counted in the samples' text."""
    scored = LocalLikelihoodScorer(sampler).rolling_loglikelihood(TEXTS)
    samples = pd.DataFrame({"sample_id": [f"t{i}" for i in range(len(TEXTS))], "input": TEXTS})
    scores = pd.DataFrame({"sample_id": samples["sample_id"], "model": "tiny", "error": None,
                           "logprob": [s.logprob for s in scored], "n_tokens": [s.n_tokens for s in scored],
                           "n_bytes": [s.n_bytes for s in scored], "n_correct": [s.n_correct for s in scored]})
    metrics = aggregate_corpus("suite", samples, scores).set_index("metric")
    loglik = math.fsum(math.fsum(teacher_forced(sampler, text)[0]) for text in TEXTS)
    n_words = sum(map(lm_eval_words, TEXTS))
    assert metrics.loc["word_perplexity", "value"] == pytest.approx(math.exp(-loglik / n_words), rel=1e-5)
    assert metrics.loc["bits_per_byte", "value"] == pytest.approx(
        -loglik / (sum(len(t.encode()) for t in TEXTS) * math.log(2)), rel=1e-5)
    low, high = metrics.loc["word_perplexity", ["ci_low", "ci_high"]]
    assert low <= metrics.loc["word_perplexity", "value"] <= high


class TokenAccuracy(EncodingEvaluation):
    name = "tokens"

    def __len__(self) -> int:
        return len(TEXTS)

    def get(self, indx: int) -> str:
        return TEXTS[indx]


def test_next_token_accuracy_counts_the_first_token(sampler: LocalSampler) -> None:
    hits = [teacher_forced(sampler, text)[1] for text in TEXTS]
    result = TokenAccuracy().outcome(sampler)
    assert result.rows["n_tokens"].tolist() == [len(h) for h in hits]
    assert result.metrics["next_token_accuracy"] == pytest.approx(sum(map(sum, hits)) / sum(map(len, hits)))


class EmptyPrefixChoices(PerplexityComparisonEvaluation):
    """Multiple choice with an empty prefix: each continuation is conditioned on EOS alone."""

    name = "choices"

    def __len__(self) -> int:
        return len(CHOICE_ITEMS)

    def get(self, indx: int) -> tuple[str, list[str], int]:
        return CHOICE_ITEMS[indx]


def test_an_empty_context_is_conditioned_on_eos(sampler: LocalSampler) -> None:
    result = EmptyPrefixChoices().outcome(sampler)
    for (_, choices, _), logprobs in zip(CHOICE_ITEMS, result.rows["logprobs"], strict=True):
        assert logprobs == pytest.approx([math.fsum(teacher_forced(sampler, c)[0]) for c in choices], abs=1e-4)
    [score] = LocalLikelihoodScorer(sampler).loglikelihood([LoglikelihoodRequest("", "Water boils")])
    assert score.n_tokens == len(teacher_forced(sampler, "Water boils")[0])
