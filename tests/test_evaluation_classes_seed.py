"""Seed 004 as written: ``Evaluator.from_trainer`` / ``from_checkpoint``, calling an evaluator, ``chunk_size`` seen
in the batches the model receives, and a failed generation scored as the pipeline scores it (an error row)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    ExecutionSpec,
    JsonlMultipleChoiceEvaluation,
    JsonlRolloutEvaluation,
    PerplexityEvaluation,
    RolloutEvaluation,
)
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.inference.precomputed import PrecomputedSampler

PROMPTS = ["What is the capital of France?", "Two plus two is", "The sky is", "def add(a, b):", "Water boils at"]
TEXTS = ["The capital of France is Paris.", "A quick brown fox jumps over the lazy dog.", "Water boils.",
         "Two plus two is four.", "Evaluation pipelines measure models."]
MAX_TOKENS = 5


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny model on one CPU thread: for a model this small, more threads only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Answers(RolloutEvaluation):
    """Each prompt expects the given answer."""

    name = "answers"

    def __init__(self, expected: Sequence[str], prompts: Sequence[str] = PROMPTS) -> None:
        self.expected, self.prompts = list(expected), list(prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def get(self, indx: int) -> tuple[str, str]:
        return self.prompts[indx], self.expected[indx]

    def clean(self, y_hat: str) -> str:
        return y_hat.strip()

    def max_new_tokens(self, inference: Any) -> int:
        return MAX_TOKENS


class Texts(PerplexityEvaluation):
    name = "texts"

    def __init__(self, texts: Sequence[str] = TEXTS[:3]) -> None:
        self.texts = list(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def get(self, indx: int) -> str:
        return self.texts[indx]


class TokenAccuracy(EncodingEvaluation):
    name = "tokens"

    def __len__(self) -> int:
        return len(TEXTS)

    def get(self, indx: int) -> str:
        return TEXTS[indx]


class SeedEncoding:
    """The seed's ``encoding``: a tokenizer with only ``encode_batch`` / ``decode_batch`` (as tiktoken has)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(self._tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [self._tokenizer.decode(list(ids)) for ids in batch]


@contextmanager
def batches_seen(model: Any) -> Iterator[list[int]]:
    """The batch size of every forward pass the model runs over whole sequences (a scoring pass or the prompt of a
    generation; the one-token decoding steps after it are left out)."""
    seen: list[int] = []

    def record(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[1] > 1:
            seen.append(int(ids.shape[0]))

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def corpus_perplexity(model: Any, tokenizer: Any, texts: Sequence[str]) -> float:
    """exp(Σ NLL / Σ tokens) over every token after BOS, by plain torch on unpadded single sequences."""
    import torch

    total_nll, total_tokens = 0.0, 0
    for text in texts:
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        total_nll += float(torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum"))
        total_tokens += len(ids) - 1
    return math.exp(total_nll / total_tokens)


@pytest.fixture(scope="module")
def greedy_answers(tiny_model_dir: str) -> list[str]:
    """The tiny model's greedy answers, straight from a sampler of its folder."""
    requests = [GenerationRequest(f"r{i}", 0, ({"role": "user", "content": p},)) for i, p in enumerate(PROMPTS)]
    return [c.output or "" for c in LocalSampler(tiny_model_dir).generate(requests,
                                                                        GenerationParams(max_tokens=MAX_TOKENS))]


@pytest.fixture
def trainer(tiny_model_dir: str, tmp_path: Path) -> Any:
    """A real transformers Trainer over a fresh copy of the tiny model, in training mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True, report_to=[],
                             per_device_eval_batch_size=3, save_strategy="no")
    trainer = Trainer(model=model, args=args, processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    model.train()
    return trainer


def half_right(greedy_answers: list[str]) -> list[str]:
    """Items 0 and 2 expect the model's own answer, the others something it never says: a score of 2/5."""
    return [answer if i in (0, 2) else "never said" for i, answer in enumerate(greedy_answers)]


# -- the seed's example: from_trainer, then call it ------------------------------------------------------------


def test_the_seed_example_runs_on_a_transformers_trainer(trainer: Any, greedy_answers: list[str]) -> None:
    evaluations = [Answers(half_right(greedy_answers)), Texts()]
    encoding = SeedEncoding(trainer.processing_class)
    with batches_seen(trainer.model) as seen:
        # -- the seed's example, as written --
        evaluator = Evaluator.from_trainer(trainer, evaluations, encoding)
        evaluator()  # Runs evaluations and saves results
        # --
    assert evaluator.done
    assert evaluator.results_path == Path(trainer.args.output_dir) / "evaluations" / "step-0" / "results.json"
    saved = evaluator.results()
    assert saved["scores"]["answers/score"] == pytest.approx(2 / 5)
    assert saved["scores"]["texts/score"] == pytest.approx(
        corpus_perplexity(trainer.model, trainer.processing_class, TEXTS[:3]), rel=1e-5)
    assert saved["step"] == 0 and saved["evaluations"][0]["errors"] == 0
    # what it took from the trainer: the live model (on its device), its tokenizer, its eval batch size (3)
    assert evaluator.inference.model is trainer.model and evaluator.inference.tokenizer is trainer.processing_class
    assert evaluator.inference.device == str(trainer.model.device) == "cpu"
    assert seen == [3, 2, 3]  # 5 prompts in batches of 3 and 2, then the 3 texts in one batch
    assert trainer.model.training  # scored in eval mode, handed back in training mode

    # the seed's encoding (encode_batch only) gives the intermediates' token ids
    scores, intermediates = evaluator.evaluate(reduce="none", return_intermediates=True)
    ids, mask = intermediates[1][0]
    assert ids[mask].tolist() == encoding.encode_batch([TEXTS[0]])[0]
    assert scores["answers/score"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]

    trainer.state.global_step = 40  # later in training: a new folder for the new step
    evaluator()
    assert evaluator.results_path is not None and evaluator.results_path.parent.name == "step-40"
    assert evaluator.results()["step"] == 40


def test_from_trainer_with_a_config_as_the_seed_signature_has_it(trainer: Any, tmp_path: Path) -> None:
    config = {"evaluations": [Texts()], "batch_size": 2, "output_dir": str(tmp_path / "out")}
    evaluator = Evaluator.from_trainer(trainer, config=config)
    assert Evaluator.from_trainer(trainer, config).inference.batch_size == 2  # config given second, positionally
    with batches_seen(trainer.model) as seen:
        scores = evaluator()
    assert seen == [2, 1] and (tmp_path / "out" / "results.json").is_file()
    assert scores == evaluator.results()["scores"]
    with pytest.raises(EvalInputError, match="at least one evaluation"):
        Evaluator.from_trainer(trainer)


def test_calling_an_evaluator_on_another_model(trainer: Any, tiny_model_dir: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    other = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(1.5)
    evaluator = Evaluator.from_trainer(trainer, [Texts()], output_dir=None)
    evaluator.trainer = None  # no output folder: calling it returns the scores without saving
    tokenizer = trainer.processing_class
    mine, theirs = evaluator(), evaluator(other)
    assert mine["texts/score"] == pytest.approx(corpus_perplexity(trainer.model, tokenizer, TEXTS[:3]), rel=1e-5)
    assert theirs["texts/score"] == pytest.approx(corpus_perplexity(other, tokenizer, TEXTS[:3]), rel=1e-5)
    assert mine["texts/score"] != pytest.approx(theirs["texts/score"], rel=1e-3)
    assert evaluator(LocalSampler(tiny_model_dir))["texts/score"] == pytest.approx(mine["texts/score"], rel=1e-6)
    with pytest.raises(TypeError, match="cannot evaluate"):
        evaluator("not a model")


# -- from_checkpoint -------------------------------------------------------------------------------------------


def test_from_checkpoint_and_resume(trainer: Any, tmp_path: Path) -> None:
    trainer.state.global_step = 7
    folder = Path(trainer.args.output_dir) / "checkpoint-7"
    trainer.save_model(str(folder))
    trainer.state.save_to_json(str(folder / "trainer_state.json"))
    spec = ExecutionSpec(evaluations=[Texts(), TokenAccuracy()], checkpoint_dir=trainer.args.output_dir)

    evaluator, config = Evaluator.from_checkpoint("checkpoint-7", spec, runtime_cfg={"batch_size": 2})
    assert (config.path, config.step, config.spec.batch_size) == (folder, 7, 2)
    assert config.model_config["vocab_size"] == trainer.model.config.vocab_size
    assert not evaluator.done
    with batches_seen(evaluator.inference.model) as seen:
        scores = evaluator()
    assert evaluator.done and evaluator.results_path == folder / "evaluations" / "results.json"
    assert seen == [2, 1, 2, 2, 1]  # batches of the runtime batch size: 3 texts, then 5
    assert scores["texts/score"] == pytest.approx(
        corpus_perplexity(trainer.model, trainer.processing_class, TEXTS[:3]), rel=1e-5)

    resumed, _ = Evaluator.from_checkpoint(folder, spec, resume=True)  # an absolute path works too
    with batches_seen(evaluator.inference.model) as seen:
        assert resumed() == scores
        resumed.run()
    assert seen == []  # nothing ran again
    again, _ = Evaluator.from_checkpoint("checkpoint-7", spec)
    with batches_seen(evaluator.inference.model) as seen:
        assert again()["texts/score"] == pytest.approx(scores["texts/score"], rel=1e-6)
    assert seen == [3, 5]  # without resume it runs (the spec's batch size, 8)

    with pytest.raises(EvalInputError) as error:
        Evaluator.from_checkpoint("checkpoint-7", spec, runtime_cfg={"batch_sise": 2})
    assert error.value.field == "runtime_cfg.batch_sise"
    with pytest.raises(EvalInputError, match="not found") as error:
        Evaluator.from_checkpoint("checkpoint-8", spec)
    assert error.value.file == str(Path(trainer.args.output_dir) / "checkpoint-8")


# -- chunk_size ------------------------------------------------------------------------------------------------


def test_chunk_size_is_the_number_of_items_sent_to_the_model_at_once(tiny_model_dir: str, tmp_path: Path,
                                                                     greedy_answers: list[str]) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=4)
    rollouts, texts, tokens = Answers(half_right(greedy_answers)), Texts(TEXTS), TokenAccuracy()
    rows = [{"question": text, "choices": ["yes", "no"], "answer": 0} for text in TEXTS]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    choices = JsonlMultipleChoiceEvaluation(tmp_path / "mc.jsonl")
    for evaluation, whole, chunked in [(rollouts, [4, 1], [2, 2, 1]), (texts, [4, 1], [2, 2, 1]),
                                       (tokens, [4, 1], [2, 2, 1]), (choices, [4, 4, 2], [4, 4, 2])]:
        with batches_seen(sampler.model) as default:
            unchunked = evaluation(sampler, reduce="none")  # chunk_size 200: one call, batches of the sampler's 4
        with batches_seen(sampler.model) as seen:
            values = evaluation(sampler, reduce="none", chunk_size=2)
        assert (default, seen) == (whole, chunked), evaluation.name
        assert values == pytest.approx(unchunked, rel=1e-6)
    with batches_seen(sampler.model) as seen:
        choices(sampler, chunk_size=1)
    assert seen == [2] * 5  # one item (two continuations) at a time
    with pytest.raises(ValueError, match="chunk_size"):
        texts(sampler, chunk_size=0)


# -- a failed generation: the same number as the pipeline ------------------------------------------------------


ITEMS = [("q0", "capital of France?", "Paris"), ("q1", "two plus two?", "4"), ("q2", "colour of the sky?", "blue"),
         ("q3", "boiling point?", "100"), ("q4", "is it raining?", "yes")]
RESPONSES = [("q0", 0, "Paris"), ("q0", 1, "Paris"), ("q1", 0, "4"),  # q1's second sample is missing: it fails
             ("q2", 0, "blue"), ("q2", 1, "green"),  # q3 has no response at all: both samples fail
             ("q4", 0, "no"), ("q4", 1, "no")]


def write_failing_data(folder: Path) -> tuple[Path, Path]:
    data = folder / "data"
    data.mkdir(parents=True)
    dataset, responses = data / "qa.jsonl", data / "responses.jsonl"
    dataset.write_text("".join(json.dumps({"id": i, "prompt": p, "referenceResponse": r}) + "\n"
                               for i, p, r in ITEMS))
    responses.write_text("".join(json.dumps({"sample_id": i, "sample_index": k, "response": r}) + "\n"
                                 for i, k, r in RESPONSES))
    return dataset, responses


def reference_figures() -> tuple[float, int, int]:
    """By hand: item means over the scored samples (q0 1, q1 1, q2 1/2, q4 0; q3 has none), 3 failed samples."""
    return (1 + 1 + 0.5 + 0) / 4, 3, 4


def test_a_failed_generation_is_an_error_as_in_the_pipeline_aggregation(tmp_path: Path) -> None:
    from eval_pipeline.data.formats import load_samples
    from eval_pipeline.inference.runner import run_generations
    from eval_pipeline.metrics.aggregate import aggregate_scores
    from eval_pipeline.scoring.registry import score_generations
    from eval_pipeline.scoring.spec import ScorerSpec

    dataset, responses = write_failing_data(tmp_path)
    sampler = PrecomputedSampler.from_file(str(responses))
    samples = load_samples(str(dataset), "auto", None)
    generations, _ = run_generations(samples, "recorded", sampler, GenerationParams(max_tokens=8), num_samples=2)
    scores = score_generations(samples, generations, [ScorerSpec(name="exact_match")])
    pipeline = aggregate_scores("qa", samples, scores).iloc[0]
    value, errors, n = reference_figures()
    assert (pipeline["value"], pipeline["errors"], pipeline["n"]) == (value, errors, n)

    evaluation = JsonlRolloutEvaluation(dataset, "exact", name="qa")
    assert evaluation(sampler, samples_per_prompt=2) == pipeline["value"]  # exactly; 0 for a failure gave 0.4
    outcome = evaluation.outcome(sampler, samples_per_prompt=2)
    assert outcome.errors == pipeline["errors"]
    for figure in ("errors", "n", "stderr", "ci_low", "ci_high"):
        assert outcome.metrics[figure] == pipeline[figure], figure
    none = evaluation(sampler, reduce="none", samples_per_prompt=2)
    assert none.shape == (5, 2) and np.isnan(none).sum() == errors and np.isnan(none[3]).all()
    assert evaluation(sampler, reduce="sum", samples_per_prompt=2) == 4.0  # the scored samples' sum
    assert outcome.rows["error"].notna().sum() == errors
    assert outcome.rows.loc[outcome.rows["error"].notna(), "error"].str.startswith("generation failed").all()

    evaluator = Evaluator(sampler, [evaluation], output_dir=tmp_path / "out")
    evaluator.run(samples_per_prompt=2)
    saved = evaluator.results()
    assert saved["scores"]["qa/score"] == value and saved["metrics"]["qa/errors"] == errors
    assert saved["evaluations"][0]["errors"] == errors
    rows = pd.read_parquet(tmp_path / "out" / "qa.parquet")
    assert rows["score"].isna().sum() == errors


def test_a_score_that_comes_back_nan_is_an_error_too(tmp_path: Path) -> None:
    class Unsure(JsonlRolloutEvaluation):
        def value(self, y: str, y_hat: str) -> float:  # as a checker that gives no value
            return float("nan") if y == "blue" else super().value(y, y_hat)

    dataset, responses = write_failing_data(tmp_path)
    outcome = Unsure(dataset, name="qa").outcome(PrecomputedSampler.from_file(str(responses)), samples_per_prompt=2)
    assert outcome.errors == 5 and outcome.metrics["n"] == 3  # q2's two samples join the three failures
    assert outcome.total == (1 + 1 + 0) / 3
    assert (outcome.rows["error"] == "not scored").sum() == 2


@pytest.mark.slow
def test_a_failed_generation_gives_the_suite_runs_number(eval_home: Path, tmp_path: Path) -> None:
    """The same inputs run as a suite (Dagster, Parquet): the metrics row equals the class's figures."""
    import dagster as dg

    from eval_pipeline.execution import run_suite
    from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
    from eval_pipeline.suite_definitions import default_resources
    from eval_pipeline.suites import load_suite

    dataset, responses = write_failing_data(tmp_path / "project")
    suite_path = tmp_path / "project" / "evals" / "failing.yaml"
    suite_path.parent.mkdir()
    suite_path.write_text("""\
suite: failing
dataset: {uri: data/qa.jsonl}
models:
  - {name: recorded, backend: precomputed, responses: data/responses.jsonl}
generation: {max_tokens: 8, num_samples: 2}
scorers: [exact_match]
max_error_rate: 0.5
""")
    resources = {**default_resources(), "mlflow": MlflowTrackingResource(tracking_uri="sqlite://", enabled=False)}
    result = run_suite(load_suite(suite_path), dg.DagsterInstance.ephemeral(), resources=resources)
    assert result.success, [m.error for m in result.models]
    row = result.metrics[result.metrics["breakdown_key"].isna()].iloc[0]
    outcome = JsonlRolloutEvaluation(dataset, "exact", name="qa").outcome(
        PrecomputedSampler.from_file(str(responses)), samples_per_prompt=2)
    assert (row["value"], row["errors"], row["n"]) == (outcome.total, outcome.errors, outcome.metrics["n"])
    assert (row["value"], row["errors"], row["n"]) == reference_figures()


# -- the seed's signatures, called as written ------------------------------------------------------------------


def test_the_seed_signatures(tiny_model_dir: str, greedy_answers: list[str]) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=4)
    encoding = SeedEncoding(sampler.tokenizer)
    rollouts = Answers(half_right(greedy_answers))
    # RolloutEvaluation.__call__(inference, encoding, reduce='mean', return_intermediates=False, temperature=0.0,
    #                            top_p=1.0, chunk_size=200, samples_per_prompt=1)
    assert rollouts(sampler, encoding, reduce="mean", return_intermediates=False, temperature=0.0, top_p=1.0,
                    chunk_size=200, samples_per_prompt=1) == pytest.approx(2 / 5)
    score, intermediates = rollouts(sampler, encoding, "sum", True)
    assert score == 2.0 and len(intermediates) == len(PROMPTS)
    # score(ys, y_hats) -> one float per sample; check(y, y_hat) -> bool
    assert rollouts.score(["a", "b"], [" a ", "c"]) == [1.0, 0.0] and rollouts.check("a", "a")
    # PerplexityEvaluation.score(per_sample_nll, per_sample_count)
    assert Texts().score(np.array([2.0, 3.0]), np.array([4, 3])) == pytest.approx([math.exp(0.5), math.exp(1.0)])
    # EncodingEvaluation.__call__(inference, encoding, reduce='mean', return_intermediates=False, chunk_size=200)
    assert 0.0 <= TokenAccuracy()(sampler, encoding, reduce="mean", return_intermediates=False, chunk_size=200) <= 1
    # find_accumulation_steps(dataset_size, max_batch_size, dp_replicate) -> (batch_size, accumulation_steps)
    assert Evaluation.find_accumulation_steps(dataset_size=12, max_batch_size=4, dp_replicate=2) == (3, 2)
    # Evaluator.evaluate(reduce='mean', return_intermediates=False, **kwargs) with kwargs for each call
    evaluator = Evaluator(sampler, [rollouts, Texts()], encoding=encoding)
    scores = evaluator.evaluate(reduce="mean", return_intermediates=False, temperature=0.0, top_p=1.0,
                                chunk_size=2)
    assert scores["answers/score"] == pytest.approx(2 / 5) and set(scores) == {"answers/score", "texts/score"}
    # prefix() -> str; __len__() -> int; name
    assert (rollouts.prefix(), len(rollouts), rollouts.name) == ("answers/", 5, "answers")


# -- Evaluator(spec: ExecutionSpec), as the seed lists it -----------------------------------------------------------


def test_an_evaluator_built_from_a_spec(tiny_model_dir: str, tmp_path: Path, greedy_answers: list[str]) -> None:
    import dataclasses

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval_pipeline.evaluations import EvaluatorConfig, InferenceJob

    folder = Path(tiny_model_dir)
    spec = ExecutionSpec(evaluations=[Texts(), TokenAccuracy()], checkpoint=folder.name,
                         checkpoint_dir=folder.parent, output_dir=tmp_path / "out", batch_size=2, device="cpu",
                         dtype="float32")
    evaluator: Evaluator[Any] = Evaluator(spec)  # the seed's Evaluator[M], subscripted
    assert isinstance(evaluator, InferenceJob) and EvaluatorConfig is ExecutionSpec and evaluator.config is spec
    assert (evaluator.inference.model_path, evaluator.inference.batch_size) == (str(folder), 2)
    assert (evaluator.inference.device, evaluator.inference.dtype) == ("cpu", "float32")
    assert not evaluator.done
    with batches_seen(evaluator.inference.model) as seen:
        evaluator.run()
    assert seen == [2, 1, 2, 2, 1]  # the spec's batch size: 3 texts, then 5
    assert evaluator.done and (tmp_path / "out" / "results.json").is_file()
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(folder)
    assert evaluator.results()["scores"]["texts/score"] == pytest.approx(
        corpus_perplexity(model, tokenizer, TEXTS[:3]), rel=1e-5)
    # the older form over the same model gives the same numbers; ``spec=`` by keyword as the seed names it
    plain = Evaluator(LocalSampler(tiny_model_dir, batch_size=2), [Texts(), TokenAccuracy()])
    assert plain.config is None and plain.evaluate() == Evaluator(spec=spec).evaluate()
    # without output_dir, results go beside the checkpoint (nothing is run here)
    assert Evaluator(dataclasses.replace(spec, output_dir=None)).output_dir == folder / "evaluations"
    # an evaluation given the evaluator itself (the seed's ``inference: InferenceJob``) runs on its model
    assert Texts()(evaluator, None) == pytest.approx(evaluator.results()["scores"]["texts/score"], rel=1e-9)
    assert Answers(half_right(greedy_answers))(evaluator) == pytest.approx(2 / 5)
    assert plain(evaluator)["texts/score"] == pytest.approx(evaluator.results()["scores"]["texts/score"], rel=1e-9)


def spec_cases(folder: Path) -> list[tuple[dict[str, Any], str]]:
    """Spec fields set wrong, and the field the error must name."""
    (folder / "empty").mkdir()
    return [({"evaluations": ()}, "spec.evaluations"), ({"evaluations": "texts"}, "spec.evaluations"),
            ({"evaluations": [Texts(), "texts"]}, "spec.evaluations[1]"), ({"checkpoint": None}, "spec.checkpoint"),
            ({"checkpoint": "missing"}, "spec.checkpoint"), ({"checkpoint": folder / "empty"}, "spec.checkpoint"),
            ({"checkpoint": 7}, "spec.checkpoint"), ({"output_dir": 5}, "spec.output_dir"),
            ({"batch_size": 0}, "spec.batch_size"), ({"batch_size": "8"}, "spec.batch_size"),
            ({"batch_size": True}, "spec.batch_size"), ({"device": "gpu0"}, "spec.device"),
            ({"device": "cuda:99"}, "spec.device"), ({"dtype": "float8"}, "spec.dtype")]


def test_a_bad_spec_names_the_field(tiny_model_dir: str, tmp_path: Path) -> None:
    good = ExecutionSpec(evaluations=[Texts()], checkpoint=tiny_model_dir, batch_size=2)
    Evaluator(good)  # the good one builds (the model loads on first use)
    for change, field in spec_cases(tmp_path):
        with pytest.raises(EvalInputError) as error:
            Evaluator(ExecutionSpec(**{**vars(good), **change}))
        assert error.value.field == field, change
    with pytest.raises(EvalInputError, match="not found") as error:
        Evaluator(ExecutionSpec(evaluations=[Texts()], checkpoint="missing", checkpoint_dir=tmp_path))
    assert error.value.file == str(tmp_path / "missing")
    with pytest.raises(EvalInputError) as error:  # a runtime overlay is checked as the spec is
        Evaluator.from_checkpoint(tiny_model_dir, good, runtime_cfg={"batch_size": 0})
    assert error.value.field == "spec.batch_size"
    with pytest.raises(TypeError, match=r"spec\.evaluations"):  # one place for each setting
        Evaluator(good, [Texts()])
    with pytest.raises(TypeError, match="evaluations"):
        Evaluator(LocalSampler(tiny_model_dir))


def test_from_checkpoint_is_evaluator_of_a_spec(trainer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "run" / "checkpoint-3"
    trainer.save_model(str(folder))
    monkeypatch.chdir(tmp_path)  # a relative checkpoint_dir is resolved once, not twice
    spec = ExecutionSpec(evaluations=[Texts()], checkpoint_dir="run")
    evaluator, config = Evaluator.from_checkpoint(suffix="checkpoint-3", spec=spec, runtime_cfg=None, resume=False)
    assert (config.path, config.step) == (folder, 3) and evaluator.config is config.spec
    assert config.spec.checkpoint == folder and evaluator.output_dir == folder / "evaluations"
    assert evaluator.inference.model_path == str(folder)


# -- every signature of seed 004, called as written ----------------------------------------------------------------


def test_the_seed_signatures_positionally(tiny_model_dir: str, greedy_answers: list[str], tmp_path: Path) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=4)
    encoding = SeedEncoding(sampler.tokenizer)
    rollouts, texts, tokens = Answers(half_right(greedy_answers)), Texts(), TokenAccuracy()
    # RolloutEvaluation.__call__(inference, encoding, reduce, return_intermediates, temperature, top_p, chunk_size,
    #                            samples_per_prompt)
    assert rollouts(sampler, encoding, "mean", False, 0.0, 1.0, 2, 1) == pytest.approx(2 / 5)
    # EncodingEvaluation / PerplexityEvaluation / PerplexityComparisonEvaluation
    #   .__call__(inference, encoding, reduce, return_intermediates, chunk_size)
    with batches_seen(sampler.model) as seen:
        assert tokens(sampler, encoding, "none", False, 2) == pytest.approx(tokens(sampler, encoding, "none"))
    assert seen == [2, 2, 1, 4, 1]
    with batches_seen(sampler.model) as seen:
        assert texts(sampler, encoding, "mean", False, 1) == pytest.approx(texts(sampler, encoding), rel=1e-6)
    assert seen == [1, 1, 1, 3]
    (tmp_path / "mc.jsonl").write_text(json.dumps({"question": "Sky?", "choices": ["blue", "red"], "answer": 0}))
    choices = JsonlMultipleChoiceEvaluation(tmp_path / "mc.jsonl")
    assert choices(sampler, encoding, "sum", False, 1) in (0.0, 1.0)
    assert choices.score([1, 0.0]) == [1.0, 0.0]  # score(correct_flags)
    # Evaluator: evaluate(reduce, return_intermediates, **kwargs), run() -> None, done, from_trainer/from_checkpoint
    evaluator = Evaluator(sampler, [texts], output_dir=tmp_path / "out", encoding=encoding)
    scores, intermediates = evaluator.evaluate("sum", True, chunk_size=2)
    assert scores["texts/score"] == pytest.approx(sum(texts(sampler, reduce="none"))) and len(intermediates[0]) == 3
    assert not evaluator.done and evaluator.run() is None and evaluator.done
    # the defaults the seed leaves to subclasses
    with pytest.raises(NotImplementedError):
        Evaluation.score(texts, [1.0])
    with pytest.raises(NotImplementedError, match="max_new_tokens"):
        RolloutEvaluation.max_new_tokens(rollouts, evaluator)
    assert Evaluation.find_accumulation_steps(7, 4, 2) == (None, None)


class Characters(Evaluation):
    """Written as seed 004 has an ``Evaluation``: ``name``, ``__len__`` and ``__call__``, no ``outcome``. Scores
    each text by its characters per token (NaN for the empty text)."""

    name = "characters"
    texts: tuple[str, ...] = ("The capital of France is Paris.", "", "Water boils.")

    def __len__(self) -> int:
        return len(self.texts)

    def __call__(self, inference: Any, encoding: Any, reduce: str = "mean", return_intermediates: bool = False,
                 **kwargs: Any) -> Any:
        ids = encoding.encode_batch(self.texts)
        scores = np.array([len(text) / len(row) if row else np.nan for text, row in zip(self.texts, ids, strict=True)])
        value = {"mean": np.nanmean(scores), "sum": np.nansum(scores), "none": scores}[reduce]
        return (value, [(np.array(row), np.ones(len(row), bool)) for row in ids]) if return_intermediates else value


def test_an_evaluation_written_as_the_seed_has_it(tiny_model_dir: str, tmp_path: Path) -> None:
    sampler = LocalSampler(tiny_model_dir)
    encoding = SeedEncoding(sampler.tokenizer)
    expected = [len(text) / len(sampler.tokenizer(text, add_special_tokens=False)["input_ids"])
                for text in Characters.texts if text]
    evaluator = Evaluator(sampler, [Characters(), Texts()], output_dir=tmp_path / "out", encoding=encoding)
    assert evaluator.evaluate()["characters/score"] == pytest.approx(np.mean(expected))
    evaluator.run()
    saved = evaluator.results()
    assert saved["scores"]["characters/score"] == pytest.approx(np.mean(expected))
    assert saved["evaluations"][0]["errors"] == 1 and saved["evaluations"][0]["sum"] == pytest.approx(sum(expected))
    assert pd.read_parquet(tmp_path / "out" / "characters.parquet")["score"].isna().sum() == 1

    class Nothing(Evaluation):  # neither __call__ nor outcome: still abstract
        name = "nothing"

        def __len__(self) -> int:
            return 0

    with pytest.raises(TypeError, match="abstract"):
        Nothing()  # type: ignore[abstract]

    class Deferring(Characters):  # a __call__ that defers to the base class, with no outcome to run
        def __call__(self, inference: Any, encoding: Any, reduce: str = "mean", return_intermediates: bool = False,
                     **kwargs: Any) -> Any:
            return Evaluation.__call__(self, inference, encoding, reduce, return_intermediates, **kwargs)

    with pytest.raises(NotImplementedError, match="outcome"):
        Deferring()(sampler, encoding)
