"""An Inspect AI log as a precomputed model (issue 14, item 5): a suite model with ``responses:`` pointing at a
``.eval`` (or ``.json``) log takes each sample's output as the item's answer (sample id = item id, epoch = sample
index + 1), keeps a sample's error as an error row, refuses a log that misses an item or repeats an id, and is
re-scored and re-judged here without a single generation request; the run then exports back to an Inspect log equal
to its tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from inspect_ai.log import (
    EvalConfig,
    EvalDataset,
    EvalError,
    EvalLog,
    EvalSample,
    EvalSpec,
    read_eval_log,
    write_eval_log,
)
from inspect_ai.model import ModelOutput

from eval_pipeline.errors import EvalInputError
from eval_pipeline.execution import run_suite
from eval_pipeline.inference.backends import build_sampler
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.precomputed import PrecomputedSampler
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

N = 10
JUDGE = "amazon.nova-pro-v1:0"
BROKEN = 7
"""The item whose sample errored in the Inspect run."""
PARAMS = GenerationParams(max_tokens=8)


def inspect_log(samples: list[EvalSample], model: str = "openai/gpt-4o-mini") -> EvalLog:
    """A log as Inspect writes one (built with Inspect's own classes, not with the exporter under test)."""
    return EvalLog(status="success", samples=samples, eval=EvalSpec(
        created="2026-12-01T10:00:00+00:00", task="arith", dataset=EvalDataset(name="arith", samples=len(samples)),
        model=model, config=EvalConfig()))


def sample(sample_id: int | str, answer: str, epoch: int = 1, error: str | None = None) -> EvalSample:
    return EvalSample(id=sample_id, epoch=epoch, input=f"question {sample_id}", target="",
                      output=ModelOutput.from_content("openai/gpt-4o-mini", answer),
                      error=EvalError(message=error, traceback="", traceback_ansi="") if error else None)


def request(sample_id: str, index: int = 0) -> GenerationRequest:
    return GenerationRequest(sample_id=sample_id, sample_index=index,
                             messages=({"role": "user", "content": "anything"},))


def test_a_log_answers_by_sample_id_and_epoch(tmp_path: Path) -> None:
    path = tmp_path / "run.eval"
    write_eval_log(inspect_log([sample(1, "one"), sample(1, "uno", epoch=2), sample("b", "bee"),
                                sample(3, "", error="RateLimitError: slow down")]), str(path))
    sampler = PrecomputedSampler.from_file(str(path))
    out = sampler.generate([request("1"), request("1", 1), request("b"), request("3"), request("4")], PARAMS)
    assert [c.output for c in out[:3]] == ["one", "uno", "bee"]
    assert all(c.error is None for c in out[:3])
    assert out[3].output is None and "RateLimitError: slow down" in out[3].error and str(path) in out[3].error
    assert "no precomputed response for sample '4'" in out[4].error
    # the same log written as Inspect's JSON format reads the same
    json_path = tmp_path / "run.json"
    write_eval_log(read_eval_log(str(path)), str(json_path), format="json")
    again = PrecomputedSampler.from_file(str(json_path)).generate([request("1"), request("1", 1), request("3")],
                                                                  PARAMS)
    assert [c.output for c in again] == ["one", "uno", None]
    assert PrecomputedSampler.from_file(str(json_path)).identity() == sampler.identity()


def test_a_json_lines_file_named_json_is_still_responses(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"sample_id": "a", "response": "x"}) + "\n")
    assert PrecomputedSampler.from_file(str(path)).generate([request("a")], PARAMS)[0].output == "x"


def test_ids_that_clash_and_broken_logs_are_refused(tmp_path: Path) -> None:
    clash = tmp_path / "clash.json"  # a .eval file cannot hold both (Inspect names its entries by id)
    write_eval_log(inspect_log([sample(1, "one"), sample("1", "also one")]), str(clash), format="json")
    with pytest.raises(EvalInputError) as error:
        PrecomputedSampler.from_file(str(clash))
    assert error.value.file == str(clash) and error.value.field == "samples[1].id"
    assert "sample '1' epoch 1 appears twice" in str(error.value)
    broken = tmp_path / "broken.eval"
    broken.write_text("not a zip file")
    with pytest.raises(EvalInputError, match="not a readable Inspect log") as error:
        PrecomputedSampler.from_file(str(broken))
    assert error.value.file == str(broken)


def test_without_inspect_a_log_is_refused_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.eval"
    write_eval_log(inspect_log([sample("a", "x")]), str(path))
    for name in [m for m in sys.modules if m == "inspect_ai" or m.startswith("inspect_ai.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # what `import inspect_ai` meets when it is not installed
    with pytest.raises(EvalInputError, match=r"pip install 'eval-pipeline\[inspect\]'") as error:
        PrecomputedSampler.from_file(str(path))
    assert error.value.file == str(path)


def test_an_item_without_a_sample_is_refused_naming_the_file_and_item(tmp_path: Path) -> None:
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"p{i}", "answer": "a"}) + "\n"
                                               for i in range(3)))
    write_eval_log(inspect_log([sample("q0", "a"), sample("q2", "a")]), str(tmp_path / "run.eval"))
    (tmp_path / "s.yaml").write_text("suite: s\ndataset: {uri: qa.jsonl}\n"
                                     "models: [{name: logged, backend: precomputed, responses: run.eval}]\n")
    suite = load_suite(tmp_path / "s.yaml")
    samples = pd.DataFrame({"sample_id": ["q0", "q1", "q2"]})
    with pytest.raises(EvalInputError) as error:
        build_sampler(suite, suite.models[0], samples)
    assert error.value.file == str(tmp_path / "run.eval") and "no sample for item 'q1' (1 of 3 items)" in str(
        error.value)
    assert build_sampler(suite, suite.models[0], samples[samples["sample_id"] != "q1"]) is not None


def correct_if_reference_in_answer(fields: dict[str, str], prompt: str) -> str:
    return "Correct" if fields["ground_truth"] in fields["prediction"] else "Incorrect"


@pytest.fixture
def judge_only(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeLLMServer, ModelRouter]]:
    """The only model server: a Bedrock judge that knows the judge's model id and nothing else."""
    router = ModelRouter({JUDGE: scripted_judge(correct_if_reference_in_answer)})
    with FakeLLMServer(answer=router, known_models={JUDGE}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server, router


@pytest.mark.slow  # one whole pipeline run (Dagster, MLflow, the judge), reused for the export back
def test_an_imported_log_is_rescored_and_rejudged_without_generating(
        eval_home: Path, judge_only: tuple[FakeLLMServer, ModelRouter]) -> None:
    _, router = judge_only
    folder = eval_home.parent / "project"
    folder.mkdir()
    (folder / "qa.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n"
        for i in range(N)))
    answers = {f"q{i}": (f"It is {2 * i}." if i % 3 else "I do not know.") for i in range(N)}
    write_eval_log(inspect_log([sample(key, text, error="model crashed" if key == f"q{BROKEN}" else None)
                                for key, text in answers.items()]), str(folder / "inspect_run.eval"))
    (folder / "imported.yaml").write_text(f"""suite: imported
dataset: {{uri: qa.jsonl}}
models:
  - {{name: logged, backend: precomputed, responses: inspect_run.eval}}
scorers: [contains]
judge:
  model: {{backend: bedrock, model: {JUDGE}}}
  builtin_metrics: [Correctness]
schedule: null
max_error_rate: 0.2
""")
    result = run_suite(load_suite(folder / "imported.yaml"), local_instance())
    assert result.success, [m.error for m in result.models]

    generations = pd.read_parquet(result.models[0].outputs["generations"])
    judgments = pd.read_parquet(result.models[0].outputs["judgments"])
    scores = pd.read_parquet(result.models[0].outputs["scores"])
    answered = {key: text for key, text in answers.items() if key != f"q{BROKEN}"}
    # no generation request anywhere: the only server is the judge's, asked once per answered item
    assert dict(router.calls) == {JUDGE: len(answered)}
    assert len(judgments.dropna(subset=["score"])) == len(answered)
    rows = generations.set_index("sample_id")
    assert {key: rows.loc[key, "output"] for key in answered} == answered
    assert "model crashed" in rows.loc[f"q{BROKEN}", "error"] and pd.isna(rows.loc[f"q{BROKEN}", "output"])
    expected = {key: float(str(2 * int(key[1:])) in text) for key, text in answered.items()}
    judged = judgments.dropna(subset=["score"]).set_index("sample_id")["score"].to_dict()
    assert judged == expected
    contains = scores[scores["scorer"] == "contains"].dropna(subset=["score"]).set_index("sample_id")["score"]
    assert contains.to_dict() == expected

    # the run exported as an Inspect log again: same items, answers, errors and scores as its tables
    from eval_pipeline.cli import main

    assert main(["export-inspect", str(folder / "imported.yaml"), "--output", str(folder / "out")]) == 0
    log = read_eval_log(str(folder / "out" / "imported_logged.eval"))
    assert log.eval.model == "logged" and len(log.samples) == N
    for item in log.samples:
        assert item.output.completion == answered.get(str(item.id), "")
        assert (item.error is not None) == (item.id == f"q{BROKEN}")
        if item.id != f"q{BROKEN}":
            assert item.scores["Correctness"].value == expected[str(item.id)]
            assert item.scores["contains"].value == expected[str(item.id)]
    overall = result.metrics[result.metrics["breakdown_key"].isna()].set_index("metric")["value"]
    assert {s.name: s.metrics["value"].value for s in log.results.scores} == pytest.approx(overall.to_dict())
