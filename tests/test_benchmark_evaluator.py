"""The training-loop BenchmarkEvaluator: the same numbers as a suite run, its knobs, metrics and uploads."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations import Benchmark, BenchmarkEvaluator
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import RequestCache, request_hash
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.inference.precomputed import PrecomputedSampler

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny model on one CPU thread: for a model this small, more threads only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Scripted:
    """Answers ``yes`` to the first ``correct[prompt]`` sample indices of a prompt, ``no`` after; records requests."""

    backend = "scripted"

    def __init__(self, correct: dict[str, int] | None = None) -> None:
        self.correct = correct or {}
        self.requests: list[GenerationRequest] = []
        self.n_concurrent = 1
        self.chat_template_kwargs: dict[str, Any] = {}

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": "scripted-1"}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        self.requests += requests
        prompt = lambda r: r.messages[-1].content  # noqa: E731
        return [Completion(output="yes" if r.sample_index < self.correct.get(prompt(r), 0) else "no", tokens_in=3,
                           tokens_out=1) for r in requests]


ITEMS = [("a", "p0"), ("a", "p1"), ("b", "p2"), ("b", "p3")]


@pytest.fixture
def yes_no(tmp_path: Path) -> Path:
    path = tmp_path / "yes_no.jsonl"
    path.write_text("".join(json.dumps({"id": f"item{i}", "prompt": prompt, "referenceResponse": "yes",
                                        "category": category}) + "\n" for i, (category, prompt) in enumerate(ITEMS)))
    return path


def evaluator(dataset: Path, **kwargs: Any) -> BenchmarkEvaluator:
    return BenchmarkEvaluator(name="qa", benchmark=Benchmark(dataset=dataset), **kwargs)


# -- the same numbers as the pipeline --------------------------------------------------------------------------


def write_suite(folder: Path, model_dir: str) -> Path:
    data = folder / "data"
    data.mkdir(parents=True)
    shutil.copy(REPO / "examples" / "data" / "gen_qa.jsonl", data / "qa.jsonl")
    rows = [json.loads(line) for line in (data / "qa.jsonl").read_text().splitlines()]
    answers = [("no idea" if i % 4 == 0 else f"It is {r['referenceResponse']}" if i % 4 == 1
                else r["referenceResponse"]) for i, r in enumerate(rows)]
    (data / "oracle.jsonl").write_text("".join(json.dumps({"sample_id": r["id"], "response": a}) + "\n"
                                               for r, a in zip(rows, answers, strict=True)))
    path = folder / "evals" / "same.yaml"
    path.parent.mkdir()
    path.write_text(f"""\
suite: same
dataset: {{uri: data/qa.jsonl, limit: 12}}
models:
  - {{name: tiny-lm, backend: local, model: {model_dir}, batch_size: 4}}
  - {{name: oracle, backend: precomputed, responses: data/oracle.jsonl}}
generation: {{max_tokens: 8, temperature: 0.0, system_prompt: "Answer briefly."}}
scorers: [exact_match, f1]
breakdown_keys: [category]
""")
    return path


def test_a_suite_run_and_the_evaluator_give_identical_numbers(eval_home: Path, tmp_path: Path,
                                                              tiny_model_dir: str) -> None:
    import dagster as dg

    from eval_pipeline import paths
    from eval_pipeline.execution import run_suite
    from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
    from eval_pipeline.suite_definitions import default_resources
    from eval_pipeline.suites import load_suite

    suite_path = write_suite(tmp_path / "project", tiny_model_dir)
    suite = load_suite(suite_path)
    resources = {**default_resources(), "mlflow": MlflowTrackingResource(tracking_uri="sqlite://", enabled=False)}
    result = run_suite(suite, dg.DagsterInstance.ephemeral(), resources=resources)
    assert result.success, [m.error for m in result.models]
    pipeline = {run.model: run.metrics for run in result.models}

    benchmark = Benchmark.from_suite(suite_path)
    assert (benchmark.system_prompt, benchmark.limit, benchmark.breakdown_keys) == ("Answer briefly.", 12, ["category"])
    samplers = {"tiny-lm": LocalSampler(tiny_model_dir, batch_size=4),
                "oracle": PrecomputedSampler.from_file(str(suite_path.parent.parent / "data" / "oracle.jsonl"))}
    for model, sampler in samplers.items():
        for reward in ("exact_match", "f1"):
            loop = BenchmarkEvaluator(name="same", benchmark=dataclasses.replace(benchmark, reward_scorer=reward),
                                      max_tokens=8, model_name=model, cache=paths.generation_cache_path())
            values = loop.evaluate(sampler, step=10)
            table = pipeline[model][pipeline[model]["metric"] == reward]
            overall = table[table["breakdown_key"].isna()]["value"].item()
            assert values["mean_reward"] == overall  # exactly
            for row in table.dropna(subset=["breakdown_key"]).itertuples():
                assert values[f"mean_reward/category={row.breakdown_value}"] == row.value
            assert loop.last_run is not None
            same = ["metric", "breakdown_key", "breakdown_value", "value", "stderr", "ci_low", "ci_high", "n"]
            pd.testing.assert_frame_equal(loop.last_run.metrics[same].reset_index(drop=True),
                                          pipeline[model][same].reset_index(drop=True), check_dtype=False)
        if model == "tiny-lm":  # same requests, same cache keys: the evaluator generated nothing
            assert loop.last_run.stats.cached == 12 and loop.last_run.stats.generated == 0
    oracle = pipeline["oracle"].set_index(["metric", "breakdown_key"], drop=False)
    assert oracle.loc[("exact_match", None), "value"].item() == pytest.approx(6 / 12)  # not a trivial 0 or 1


# -- scheduling, limits, chat template -------------------------------------------------------------------------


def test_is_due(yes_no: Path) -> None:
    assert not any(evaluator(yes_no).is_due(step) for step in (0, 1, 10, 100, None))  # run_every=0: never
    every_ten = evaluator(yes_no, run_every=10)
    assert [every_ten.is_due(step) for step in (0, 5, 10, 15, 20, None)] == [False, False, True, False, True, False]


def test_limit(yes_no: Path) -> None:
    loop = evaluator(yes_no, limit=2, num_samples=3)
    loop.evaluate(Scripted())
    assert loop.last_run is not None and len(loop.last_run.samples) == 2 and len(loop.last_run.generations) == 6
    capped = BenchmarkEvaluator(name="qa", benchmark=Benchmark(dataset=yes_no, limit=3), limit=10)
    capped.evaluate(Scripted())
    assert capped.last_run is not None and len(capped.last_run.samples) == 3


def test_chat_template_reaches_the_requests(yes_no: Path) -> None:
    sampler = Scripted()
    loop = evaluator(yes_no, n_concurrent=3, chat_template={
        "system_prompt": "Be brief.", "user_template": "Q: {prompt}\nA ({input}):", "enable_thinking": False})
    loop.evaluate(sampler)
    first = sampler.requests[0].messages
    assert [m.to_dict() for m in first] == [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Q: p0\nA (p0):"}]
    assert sampler.n_concurrent == 3 and sampler.chat_template_kwargs == {"enable_thinking": False}
    assert loop.last_run is not None
    generation = loop.last_run.generations.iloc[0]
    wanted = request_hash(sampler.identity(), loop.generation_params(), GenerationRequest("item0", 0, first))
    assert generation["request_hash"] == wanted

    plain = Scripted()  # no template: the benchmark's own system prompt, the prompt as it is
    BenchmarkEvaluator(name="qa", benchmark=Benchmark(dataset=yes_no, system_prompt="From the benchmark.")).evaluate(
        plain)
    assert [m.to_dict() for m in plain.requests[0].messages] == [{"role": "system", "content": "From the benchmark."},
                                                                 {"role": "user", "content": "p0"}]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"metrics": ["pass@0"]}, "metrics"),
    ({"metrics": ["accuracy"]}, "metrics"),
    ({"chat_template": {"sytem_prompt": "x"}}, "chat_template"),
    ({"chat_template": {"user_template": "no placeholder"}}, "chat_template.user_template"),
    ({"run_every": -1}, "run_every"),
    ({"num_samples": 0}, "num_samples"),
])
def test_bad_configuration_is_an_input_error(yes_no: Path, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(EvalInputError) as error:
        evaluator(yes_no, **kwargs)
    assert error.value.field == field


# -- metrics ---------------------------------------------------------------------------------------------------


def exact_pass_at_k(counts: list[tuple[int, int]], k: int) -> Fraction:
    return sum((1 - Fraction(math.comb(n - c, k), math.comb(n, k)) for n, c in counts), Fraction(0)) / len(counts)


def exact_pass_hat_k(counts: list[tuple[int, int]], k: int) -> Fraction:
    return sum((Fraction(math.comb(c, k), math.comb(n, k)) for n, c in counts), Fraction(0)) / len(counts)


def test_pass_at_k_and_pass_hat_k_against_exact_combinatorics(yes_no: Path) -> None:
    correct = {"p0": 0, "p1": 1, "p2": 3, "p3": 5}
    names = ["pass@1", "pass@3", "pass@6", "pass^2", "pass^5", "avg", "mean_reward", "pass_rate"]
    values = evaluator(yes_no, num_samples=5, metrics=names, breakdown_keys=["category"]).evaluate(Scripted(correct))
    counts = [(5, c) for c in correct.values()]
    for k in (1, 3):
        assert values[f"pass@{k}"] == pytest.approx(float(exact_pass_at_k(counts, k)), rel=1e-12)
    for k in (2, 5):
        assert values[f"pass^{k}"] == pytest.approx(float(exact_pass_hat_k(counts, k)), rel=1e-12)
    assert math.isnan(values["pass@6"])  # 5 samples cannot estimate pass@6
    assert values["avg"] == pytest.approx(9 / 20) and values["mean_reward"] == pytest.approx(9 / 20)
    assert values["pass_rate"] == 0.25  # only p3 is right every time
    groups = {"a": counts[:2], "b": counts[2:]}
    for group, subset in groups.items():
        assert values[f"pass@3/category={group}"] == pytest.approx(float(exact_pass_at_k(subset, 3)), rel=1e-12)
        assert values[f"pass^2/category={group}"] == pytest.approx(float(exact_pass_hat_k(subset, 2)), rel=1e-12)
    assert values["pass_rate/category=b"] == 0.5

    lenient = BenchmarkEvaluator(name="qa", benchmark=Benchmark(dataset=yes_no, success_threshold=0.5), num_samples=5)
    assert lenient.evaluate(Scripted(correct)) == {"mean_reward": pytest.approx(9 / 20), "pass_rate": 0.5}


# -- uploads ---------------------------------------------------------------------------------------------------


def test_parquet_folder_and_object_stores(yes_no: Path, tmp_path: Path) -> None:
    loop = evaluator(yes_no, store=str(tmp_path / "evals"), num_samples=2)
    values = loop.evaluate(Scripted({"p0": 2}), step=7)
    items = pd.read_parquet(tmp_path / "evals" / "qa" / "step-00000007.parquet")
    assert len(items) == 8 and set(items["step"]) == {7} and items["exact_match"].sum() == 2
    saved = json.loads((tmp_path / "evals" / "qa" / "step-00000007.metrics.json").read_text())
    assert saved["metrics"] == values and saved["step"] == 7

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, int | None]] = []

        def log(self, record: Any, step: int | None = None) -> str:
            self.calls.append((record, step))
            return "logged"

    recorder = Recorder()
    loop = evaluator(yes_no, store=recorder, benchmark_id="bench-1")
    loop.evaluate(Scripted(), step=3)
    record, step = recorder.calls[0]
    assert step == 3 and record.params["step"] == 3 and record.tags["benchmark_id"] == "bench-1"
    assert record.suite == "qa" and len(record.items) == 4 and "exact_match" in set(record.metrics["metric"])
    assert loop.last_run is not None and loop.last_run.uploaded_to == "logged"


def test_a_broken_store_never_stops_training(yes_no: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    class Exploding:
        def log(self, record: Any) -> None:
            raise ConnectionError("dashboard down")

    for store in (str(blocker / "evals"), "bogus://nowhere", Exploding()):
        caplog.clear()
        loop = evaluator(yes_no, store=store)
        with caplog.at_level(logging.WARNING):
            values = loop.evaluate(Scripted({"p0": 1}), step=5)
        assert values == {"mean_reward": 0.25, "pass_rate": 0.25}
        assert loop.last_run is not None and loop.last_run.upload_error and loop.last_run.uploaded_to is None
        assert any("training goes on" in message for message in caplog.messages)


def test_mlflow_store_gets_the_metrics_at_the_step(yes_no: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    training = client.create_run(client.create_experiment("training", artifact_location=str(tmp_path / "artifacts")))
    loop = evaluator(yes_no, store=uri, run_id=training.info.run_id, metrics=["pass@1", "mean_reward"])
    values = loop.evaluate(Scripted({"p0": 1, "p1": 1}), step=100, model_path="/ckpt/step-100")
    assert values == {"pass@1": 0.5, "mean_reward": 0.5}

    history = client.get_metric_history(training.info.run_id, "qa/pass_at_1")
    assert [(m.step, m.value) for m in history] == [(100, 0.5)]
    assert loop.last_run is not None and loop.last_run.upload_error is None
    eval_run = client.get_run(loop.last_run.uploaded_to)
    assert eval_run.info.experiment_id == training.info.experiment_id
    assert eval_run.data.tags["mlflow.parentRunId"] == training.info.run_id and eval_run.data.tags["step"] == "100"
    assert eval_run.data.params["step"] == "100" and eval_run.data.params["model_path"] == "/ckpt/step-100"
    assert [(m.step, m.value) for m in client.get_metric_history(eval_run.info.run_id, "mean_reward")] == [(100, 0.5)]


# -- a live in-memory model ------------------------------------------------------------------------------------


def test_live_model_sampler(tiny_model_dir: str, yes_no: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.train()  # a training loop's model
    live = LocalSampler.from_loaded(model, AutoTokenizer.from_pretrained(tiny_model_dir), name="live", batch_size=2)
    requests = [GenerationRequest(f"s{i}", 0, ({"role": "user", "content": p},)) for i, p in enumerate(["hi", "x y"])]
    params = GenerationParams(max_tokens=5)
    expected = LocalSampler(tiny_model_dir).generate(requests, params)
    assert [c.output for c in live.generate(requests, params)] == [c.output for c in expected]
    assert model.training  # put back in training mode

    assert live.identity() == {"backend": "local", "model": "live", "revision": None} and not live.cacheable
    cache = RequestCache(tmp_path / "cache.sqlite")
    loop = BenchmarkEvaluator(name="qa", benchmark=Benchmark(dataset=yes_no), max_tokens=4, cache=cache)
    loop.evaluate(live, step=1)
    assert len(cache) == 0  # unknown weights: nothing cached
    live.revision = "run-1/step-2"
    assert live.cacheable and live.identity()["revision"] == "run-1/step-2"
    loop.evaluate(live, step=2)
    assert len(cache) == len(ITEMS)
