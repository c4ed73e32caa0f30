"""The Evaluation classes on the tiny local model, checked against plain torch computations written here."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations import (
    EncodingEvaluation,
    Evaluation,
    Evaluator,
    JsonlMultipleChoiceEvaluation,
    JsonlRolloutEvaluation,
    PerplexityEvaluation,
    RolloutEvaluation,
    TextCorpusPerplexityEvaluation,
    reduce_scores,
)
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.scoring.text import numeric_match

PROMPTS = ["What is the capital of France?", "Two plus two is", "The sky is", "def add(a, b):"]
TEXTS = ["The capital of France is Paris.", "A quick brown fox jumps over the lazy dog.", "Water boils."]
MC_ROWS = [
    {"question": "The capital of France is", "choices": ["Paris", "Rome", "a quick brown fox"], "answer": 0},
    {"question": "Two plus two is", "choices": ["four", "nine"], "answer": 0},
    {"question": "The sky is", "choices": ["blue", "green", "Evaluation pipelines"], "answer": 2},
    {"question": "Water boils at", "choices": ["100 degrees", "sea"], "answer": 1},
]
MAX_TOKENS = 6


@pytest.fixture(scope="module")
def sampler(tiny_model_dir: str) -> Iterator[LocalSampler]:
    """The tiny model on one CPU thread: for a model this small, more threads only contend (10× slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield LocalSampler(tiny_model_dir, batch_size=4)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def greedy(sampler: LocalSampler) -> list[Completion]:
    """The tiny model's own greedy answers, straight from the sampler."""
    requests = [GenerationRequest(f"r{i}", 0, ({"role": "user", "content": p},)) for i, p in enumerate(PROMPTS)]
    return sampler.generate(requests, GenerationParams(max_tokens=MAX_TOKENS))


class Rollouts(RolloutEvaluation):
    """Items 0 and 2 expect the model's own answer, 1 and 3 something it never says."""

    def __init__(self, expected: list[str]) -> None:
        self.expected = expected

    @property
    def name(self) -> str:
        return "rollouts"

    def __len__(self) -> int:
        return len(PROMPTS)

    def get(self, indx: int) -> tuple[str, str]:
        return PROMPTS[indx], self.expected[indx]

    def clean(self, y_hat: str) -> str:
        return y_hat.strip()

    def max_new_tokens(self, inference: Any) -> int:
        return MAX_TOKENS


class Texts(PerplexityEvaluation):
    name = "texts"

    def __len__(self) -> int:
        return len(TEXTS)

    def get(self, indx: int) -> str:
        return TEXTS[indx]


class TokenAccuracy(EncodingEvaluation):
    name = "tokens"

    def __len__(self) -> int:
        return len(TEXTS)

    def get(self, indx: int) -> str:
        return TEXTS[indx]


@pytest.fixture
def rollouts(greedy: list[Completion]) -> Rollouts:
    return Rollouts([greedy[0].output or "", "never said", greedy[2].output or "", "never said either"])


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# -- plain torch references ------------------------------------------------------------------------------------


def forward_logprobs(sampler: LocalSampler, ids: list[int]) -> Any:
    """log_softmax over the vocabulary at every position of one unpadded forward pass."""
    import torch

    with torch.no_grad():
        logits = sampler.model(input_ids=torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits, dim=-1)


def continuation_logprob(sampler: LocalSampler, question: str, choice: str) -> float:
    """log p(" choice" | question): the continuation's tokens are what the joint encoding adds to the question."""
    tokenizer = sampler.tokenizer
    context = tokenizer(question, add_special_tokens=False)["input_ids"]
    whole = tokenizer(f"{question} {choice}", add_special_tokens=False)["input_ids"]
    continuation = whole[len(context):]
    logprobs = forward_logprobs(sampler, context + continuation)
    return float(sum(logprobs[len(context) - 1 + i, token] for i, token in enumerate(continuation)))


def text_nll(sampler: LocalSampler, text: str) -> tuple[float, int, list[bool]]:
    """Summed cross-entropy of every token after BOS, the token count, and per-token argmax hits."""
    import torch

    ids = [sampler.tokenizer.bos_token_id, *sampler.tokenizer(text, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = sampler.model(input_ids=torch.tensor([ids])).logits[0].double()
    targets = torch.tensor(ids[1:])
    nll = torch.nn.functional.cross_entropy(logits[:-1], targets, reduction="sum")
    return float(nll), len(ids) - 1, (logits[:-1].argmax(-1) == targets).tolist()


# -- base ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "max_batch", "replicas", "expected"), [
    (12, 4, 1, (4, 3)),
    (12, 5, 1, (4, 3)),        # 5 does not divide 12: the largest batch that does
    (12, 4, 2, (3, 2)),        # 6 per replica
    (12, 100, 1, (12, 1)),     # one step holds everything
    (12, 12, 12, (1, 1)),
    (7, 3, 1, (1, 7)),         # a prime size: batches of one
    (7, 4, 2, (None, None)),   # replicas cannot share 7 items evenly
    (0, 4, 1, (None, None)),   # nothing to evaluate
])
def test_find_accumulation_steps(size: int, max_batch: int, replicas: int, expected: tuple[Any, Any]) -> None:
    found = Evaluation.find_accumulation_steps(size, max_batch, replicas)
    assert found == expected
    if found != (None, None):
        batch, steps = found
        assert batch * replicas * steps == size and batch <= max_batch


@pytest.mark.parametrize("bad", [(-1, 4, 1), (12, 0, 1), (12, 4, 0), (12.5, 4, 1)])
def test_find_accumulation_steps_rejects_bad_arguments(bad: tuple[Any, Any, Any]) -> None:
    with pytest.raises(ValueError):
        Evaluation.find_accumulation_steps(*bad)


def test_reduce_scores() -> None:
    assert reduce_scores([1.0, 0.0, 0.5], "mean") == 0.5
    assert reduce_scores([1.0, 0.0, 0.5], "sum") == 1.5
    none = reduce_scores([1.0, 0.0], "none")
    assert isinstance(none, np.ndarray) and none.tolist() == [1.0, 0.0]
    assert math.isnan(reduce_scores([], "mean"))
    with pytest.raises(ValueError, match="reduce"):
        reduce_scores([1.0], "max")


# -- rollouts --------------------------------------------------------------------------------------------------


def test_rollout_reductions(rollouts: Rollouts, sampler: LocalSampler) -> None:
    assert rollouts.prefix() == "rollouts/"
    assert rollouts(sampler) == 0.5
    assert rollouts(sampler, reduce="sum") == 2.0
    none = rollouts(sampler, reduce="none")
    assert isinstance(none, np.ndarray) and none.tolist() == [1.0, 0.0, 1.0, 0.0]
    per_prompt = rollouts(sampler, reduce="none", samples_per_prompt=2)
    assert per_prompt.shape == (4, 2) and per_prompt.tolist() == [[1, 1], [0, 0], [1, 1], [0, 0]]  # greedy twice


def test_rollout_intermediates_are_prompt_plus_answer_tokens(rollouts: Rollouts, sampler: LocalSampler,
                                                             greedy: list[Completion]) -> None:
    score, rollout = rollouts(sampler, return_intermediates=True)
    assert score == 0.5 and len(rollout) == len(PROMPTS)
    tokenizer = sampler.tokenizer
    width = {ids.shape for ids, _ in rollout}
    assert len(width) == 1  # one padded width for the batch
    for (ids, mask), completion, prompt in zip(rollout, greedy, PROMPTS, strict=True):
        assert ids.dtype == np.int64 and mask.dtype == bool and ids.shape == mask.shape
        prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                   tokenize=True, return_dict=True)["input_ids"]
        answer_ids = tokenizer(completion.output, add_special_tokens=False)["input_ids"]
        assert len(prompt_ids) == completion.tokens_in
        assert ids[mask].tolist() == list(prompt_ids) + list(answer_ids)
        assert mask[:int(mask.sum())].all() and not mask[int(mask.sum()):].any()  # right padding
        assert (ids[~mask] == tokenizer.pad_token_id).all()
    _, twice = rollouts(sampler, return_intermediates=True, samples_per_prompt=2)
    assert len(twice) == 2 * len(PROMPTS)


def test_rollouts_share_the_pipeline_cache(rollouts: Rollouts, sampler: LocalSampler, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cache = RequestCache(tmp_path / "cache.sqlite")
    first = rollouts(sampler, reduce="none", cache=cache)
    assert len(cache) == len(PROMPTS)

    def no_generation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("everything should come from the cache")

    monkeypatch.setattr(sampler, "generate", no_generation)
    assert rollouts(sampler, reduce="none", cache=cache).tolist() == first.tolist()


class Scripted:
    """A sampler with fixed answers per prompt."""

    backend = "scripted"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        return [Completion(output=self.answers.get(r.messages[-1].content, "")) for r in requests]


def test_jsonl_rollout_checkers(tmp_path: Path) -> None:
    rows = [{"id": "a", "prompt": "capital of France?", "referenceResponse": "Paris"},
            {"id": "b", "prompt": "12 * 100 + 34?", "referenceResponse": "1234"},
            {"id": "c", "prompt": "half of 3?", "referenceResponse": "#### 1.5"}]
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    sampler = Scripted({"capital of France?": "The answer: Paris.", "12 * 100 + 34?": "so it is 1,234",
                        "half of 3?": "Answer: 1.50"})
    exact = JsonlRolloutEvaluation(path)
    assert exact.name == "qa" and len(exact) == 3
    assert exact(sampler, reduce="none").tolist() == [0.0, 0.0, 0.0]  # normalized exact match of the whole answer
    assert JsonlRolloutEvaluation(path, "regex", r"answer:\s*(\w+)")(sampler, reduce="none").tolist() == [1, 0, 0]
    numbers = write_jsonl(tmp_path / "numbers.jsonl", rows[1:])
    assert JsonlRolloutEvaluation(numbers, "numeric")(sampler, reduce="none").tolist() == [1.0, 1.0]
    assert JsonlRolloutEvaluation(path, "contains")(sampler) == pytest.approx(2 / 3)  # "1,234" normalizes to 1234
    assert numeric_match("-2.50 apples", "-2.5") == 1.0 and numeric_match("none", "3") == 0.0
    with pytest.raises(EvalInputError, match="pattern"):
        JsonlRolloutEvaluation(path, "regex")
    with pytest.raises(EvalInputError) as error:
        JsonlRolloutEvaluation(path, "numeric")  # "Paris" is no number
    assert (error.value.line, error.value.field) == (1, "reference")


# -- log-likelihood evaluations --------------------------------------------------------------------------------


def test_multiple_choice_matches_plain_torch(sampler: LocalSampler, tmp_path: Path) -> None:
    evaluation = JsonlMultipleChoiceEvaluation(write_jsonl(tmp_path / "mc.jsonl", MC_ROWS))
    acc, acc_norm, logprobs = [], [], []
    for row in MC_ROWS:
        values = [continuation_logprob(sampler, row["question"], choice) for choice in row["choices"]]
        normalized = [v / len(choice) for v, choice in zip(values, row["choices"], strict=True)]
        acc.append(float(int(np.argmax(values)) == row["answer"]))
        acc_norm.append(float(int(np.argmax(normalized)) == row["answer"]))
        logprobs.append(values)
    result = evaluation.outcome(sampler)
    for got, want in zip(result.rows["logprobs"], logprobs, strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert result.rows["acc"].tolist() == acc and result.rows["acc_norm"].tolist() == acc_norm
    assert evaluation.metrics(sampler) == {"acc": np.mean(acc), "acc_norm": np.mean(acc_norm)}
    assert evaluation(sampler) == np.mean(acc)
    assert evaluation(sampler, normalize=True, reduce="none").tolist() == acc_norm
    _, intermediates = evaluation(sampler, return_intermediates=True)
    first = MC_ROWS[0]
    expected = sampler.tokenizer(f"{first['question']} {first['choices'][0]}")["input_ids"]  # BOS + tokens
    ids, mask = intermediates[0]
    assert ids[mask].tolist() == expected


def test_perplexity_matches_torch_cross_entropy(sampler: LocalSampler) -> None:
    references = [text_nll(sampler, text) for text in TEXTS]
    total_nll, total_tokens = sum(r[0] for r in references), sum(r[1] for r in references)
    evaluation = Texts()
    assert evaluation(sampler) == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-5)  # corpus, not mean
    per_text = [math.exp(nll / count) for nll, count, _ in references]
    assert evaluation(sampler, reduce="none") == pytest.approx(per_text, rel=1e-5)
    assert evaluation(sampler, reduce="sum") == pytest.approx(sum(per_text), rel=1e-5)
    assert evaluation.score(np.array([2.0, 0.0]), np.array([4, 0])) == [math.exp(0.5), 1.0]
    result = evaluation.outcome(sampler, return_intermediates=True)
    assert result.metrics["bits_per_byte"] == pytest.approx(
        total_nll / (sum(len(t.encode()) for t in TEXTS) * math.log(2)), rel=1e-5)
    for (ids, mask), (_, count, _) in zip(result.intermediates or [], references, strict=True):
        assert int(mask.sum()) == count + 1 and ids[0] == sampler.tokenizer.bos_token_id


def test_encoding_accuracy_matches_torch_argmax(sampler: LocalSampler) -> None:
    hits = [text_nll(sampler, text)[2] for text in TEXTS]
    evaluation = TokenAccuracy()
    assert evaluation(sampler, reduce="none").tolist() == pytest.approx([np.mean(h) for h in hits])
    assert evaluation(sampler) == pytest.approx(np.mean([np.mean(h) for h in hits]))
    assert evaluation.outcome(sampler).metrics["next_token_accuracy"] == pytest.approx(
        sum(map(sum, hits)) / sum(map(len, hits)))

    class DecodedCheck(TokenAccuracy):
        def check(self, x: str, y_hat: str) -> bool:
            return isinstance(y_hat, str) and x in TEXTS

    assert DecodedCheck().checks_text and not evaluation.checks_text
    assert DecodedCheck()(sampler) == 1.0


# -- Evaluator -------------------------------------------------------------------------------------------------


def test_evaluator_evaluate_run_and_done(sampler: LocalSampler, rollouts: Rollouts, tmp_path: Path) -> None:
    mc = JsonlMultipleChoiceEvaluation(write_jsonl(tmp_path / "mc.jsonl", MC_ROWS), name="mc")
    evaluator = Evaluator(sampler, [rollouts, mc, Texts()], output_dir=tmp_path / "out")
    scores = evaluator.evaluate()
    assert set(scores) == {"rollouts/score", "mc/score", "texts/score"} and scores["rollouts/score"] == 0.5
    arrays, intermediates = evaluator.evaluate(reduce="none", return_intermediates=True)
    assert [len(arrays[k]) for k in ("rollouts/score", "mc/score", "texts/score")] == [4, 4, 3]
    assert [len(i) for i in intermediates] == [4, 4, 3]

    assert not evaluator.done
    evaluator.run()
    assert evaluator.done
    saved = evaluator.results()
    assert saved["scores"] == pytest.approx(scores)
    assert set(saved["metrics"]) >= {"mc/acc", "mc/acc_norm", "texts/bits_per_byte", "texts/token_perplexity"}
    rows = pd.read_parquet(tmp_path / "out" / "rollouts.parquet")
    assert len(rows) == 4 and rows["score"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert len(pd.read_parquet(tmp_path / "out" / "texts.parquet")) == 3
    with pytest.raises(ValueError, match="output_dir"):
        Evaluator(sampler, [rollouts]).run()
    with pytest.raises(ValueError, match="prefix"):
        Evaluator(sampler, [rollouts, rollouts])


# -- bad input -------------------------------------------------------------------------------------------------


def test_answer_index_out_of_range_names_the_row(tmp_path: Path) -> None:
    rows = [*MC_ROWS[:2], {"question": "q", "choices": ["a", "b"], "answer": 2}]
    path = write_jsonl(tmp_path / "mc.jsonl", rows)
    with pytest.raises(EvalInputError) as error:
        JsonlMultipleChoiceEvaluation(path)
    assert (error.value.file, error.value.line, error.value.field) == (str(path), 3, "answer")
    assert "mc.jsonl:3" in str(error.value)


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_corpus_that_is_not_utf8_names_the_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"corpus{suffix}"
    good = '{"text": "fine"}\n' if suffix == ".jsonl" else "fine\n"
    path.write_bytes(good.encode() * 2 + b'{"text": "caf\xe9"}\n')
    with pytest.raises(EvalInputError, match="UTF-8") as error:
        TextCorpusPerplexityEvaluation(path)
    assert (error.value.file, error.value.line) == (str(path), 3)


def test_text_corpus_reads_txt_and_jsonl(sampler: LocalSampler, tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text(TEXTS[0])
    whole = TextCorpusPerplexityEvaluation(tmp_path / "one.txt")
    rows = TextCorpusPerplexityEvaluation(write_jsonl(tmp_path / "rows.jsonl", [{"text": t} for t in TEXTS]))
    assert (len(whole), len(rows)) == (1, 3) and rows.get(1) == TEXTS[1]
    assert whole(sampler) == pytest.approx(Texts()(sampler, reduce="none")[0], rel=1e-6)


def test_a_live_training_model_is_scored_without_dropout(sampler: LocalSampler, tiny_model_dir: str) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attention_dropout=0.5)
    model.train()
    live = LocalSampler.from_loaded(model, sampler.tokenizer, name="live", revision="step-1")
    assert Texts()(live, reduce="none") == pytest.approx(Texts()(sampler, reduce="none"), rel=1e-6)
    assert TokenAccuracy()(live) == TokenAccuracy()(sampler)
    assert model.training
