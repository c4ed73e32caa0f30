"""Task kinds: the registry (names, the unknown-kind message), each built-in kind's contract, and a kind registered
by a test run end to end through the real, generic Dagster assets (real instance, Parquet and MLflow store)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline.assets.suite_assets import build_suite_assets, model_stages
from eval_pipeline.errors import EvalInputError
from eval_pipeline.execution import plan_suite, run_suite
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.planning import GenerationPlan
from eval_pipeline.instance import local_instance
from eval_pipeline.metrics.aggregate import aggregate_scores
from eval_pipeline.registry import UnknownEntryError
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.spec import ModelSpec, Suite
from eval_pipeline.suites.task_kinds import TASK_KINDS
from eval_pipeline.tasks import Production, TaskKind, task_kind
from eval_pipeline.tasks.base import AnswersTable
from eval_pipeline.tasks.base import model_stages as usual_stages
from eval_pipeline.tracking import default_tracking_uri


def write_suite(folder: Path, task: str, models: str = "  - {name: m, backend: local, model: smollm2-135m-instruct}",
                extra: str = "") -> Path:
    rows = [{"id": "a", "prompt": "four", "referenceResponse": "4", "category": "x"},
            {"id": "b", "prompt": "three", "referenceResponse": "5", "category": "x"},
            {"id": "c", "prompt": "seven!", "referenceResponse": "6", "category": "y"},
            {"id": "d", "prompt": "z", "referenceResponse": "1", "category": "y"},
            {"id": "e", "prompt": "ab", "referenceResponse": "9", "category": "y"}]
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "evals" / "kind.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"suite: kind\ntask: {task}\ndataset: {{uri: data/items.jsonl}}\nmodels:\n{models}\n{extra}")
    return path


# --- the registry -------------------------------------------------------------------------------------------------

def test_the_built_in_kinds_are_registered_and_fit_the_protocol() -> None:
    assert {"generate", "multiple_choice", "perplexity"} <= set(TASK_KINDS.names())
    for name in ("generate", "multiple_choice", "perplexity"):
        kind = TASK_KINDS.get(name)
        assert isinstance(kind, TaskKind) and kind.name == name and kind.production_stage == "generations"
    assert [TASK_KINDS.get(n).judgeable for n in ("generate", "multiple_choice", "perplexity")] == [True, False, False]


def test_an_unknown_task_kind_is_an_input_error_naming_the_known_kinds(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "generat")
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert "kind.yaml:2: field 'task'" in message
    assert "unknown task kind 'generat' (did you mean 'generate'?)" in message
    assert "known: generate, lm_eval, multiple_choice, perplexity" in message
    with pytest.raises(UnknownEntryError, match="unknown task kind 'nope'"):
        TASK_KINDS.get("nope")


def test_stages_follow_the_kind_and_the_judge(tmp_path: Path) -> None:
    plain = load_suite(write_suite(tmp_path, "generate"))
    assert model_stages(plain) == ("samples", "generations", "scores", "metrics")
    judge = "judge: {builtin_metrics: [Builtin.Correctness]}\n"
    judged = load_suite(write_suite(tmp_path / "judged", "generate", extra=judge))
    assert model_stages(judged) == ("samples", "generations", "scores", "judgments", "metrics")


def test_a_kind_that_cannot_be_judged_refuses_a_judge(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "multiple_choice", extra="judge: {builtin_metrics: [Builtin.Correctness]}\n")
    with pytest.raises(EvalInputError, match="task 'multiple_choice' has no answers for a judge to rate"):
        load_suite(path)


# --- a task kind registered by a test ---------------------------------------------------------------------------

class InputLength(AnswersTable):
    """A toy kind: the "answer" is the number of characters of the prompt, no model is called. It writes its
    outputs to a stage of its own name (``answers``) so the assets are shown generic over the production stage."""

    name = "input_length"
    production_stage = "answers"
    judgeable = False

    def __init__(self) -> None:
        self.produced: list[str] = []

    def validate(self, suite: Suite) -> None:
        if len(suite.models) != 1:
            raise ValueError("task 'input_length' takes exactly one model")

    def stages(self, suite: Suite) -> tuple[str, ...]:
        return usual_stages(self, suite)

    def produce(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                log: Callable[[str], None]) -> Production:
        self.produced.append(model.name)
        frame = pd.DataFrame({
            "sample_id": samples["sample_id"], "model": model.name, "sample_index": 0,
            "output": [str(len(text)) for text in samples["input"]], "finish_reason": "stop", "tokens_in": 0,
            "tokens_out": 0, "latency_s": 0.0, "cost_usd": 0.0, "request_hash": "", "row_hash": samples["row_hash"],
            "cached": False, "error": None})
        return Production(frame, {"requests": len(frame), "generated": len(frame), "backend": model.backend},
                          summary=f"counted {len(frame)} prompts", preview_columns=["sample_id", "output"])

    def plan(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
             cache: RequestCache | None) -> GenerationPlan:
        return GenerationPlan(model=model.name, backend=model.backend, requests=len(samples), cached=0,
                              to_send=0, est_tokens_in=0, max_tokens_out=0, est_cost_usd=None)

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        merged = produced.merge(samples[["sample_id", "reference"]], on="sample_id")
        return pd.DataFrame({
            "sample_id": merged["sample_id"], "model": merged["model"], "sample_index": merged["sample_index"],
            "scorer": "length_match", "score": (merged["output"] == merged["reference"]).astype(float),
            "extracted": merged["output"], "request_hash": merged["request_hash"], "error": None})

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        return aggregate_scores(suite.suite, samples, scores, suite.breakdown_keys)

    def params(self, suite: Suite) -> dict[str, object]:
        return {"task": self.name, "scorers": ["length_match"]}


@pytest.fixture
def input_length() -> Iterator[InputLength]:
    kind = InputLength()
    TASK_KINDS.register(kind.name, kind)
    try:
        yield kind
    finally:
        TASK_KINDS.unregister(kind.name)


def test_a_registered_kind_validates_the_suite_it_is_named_in(tmp_path: Path, input_length: InputLength) -> None:
    two = "  - {name: m, backend: local, model: smollm2-135m-instruct}\n  - {name: n, backend: local, model: x}"
    with pytest.raises(EvalInputError, match="task 'input_length' takes exactly one model"):
        load_suite(write_suite(tmp_path, "input_length", models=two))
    assert task_kind(load_suite(write_suite(tmp_path, "input_length"))) is input_length


def test_a_registered_kind_runs_through_the_generic_assets(tmp_path: Path, eval_home: Path,
                                                           input_length: InputLength) -> None:
    suite = load_suite(write_suite(tmp_path / "project", "input_length", extra="breakdown_keys: [category]\n"))
    keys = {tuple(key.path) for asset in build_suite_assets(suite) for key in asset.keys}
    assert keys == {("kind", "samples"), ("kind", "answers"), ("kind", "scores"), ("kind", "metrics")}

    result = run_suite(suite, local_instance())
    assert result.success, [m.error for m in result.models]
    (run,) = result.models
    assert input_length.produced == ["m"]
    assert set(run.outputs) == {"samples", "answers", "scores", "metrics"}
    assert run.generation["requests"] == 5 and run.generation["backend"] == "local"  # the production metadata

    answers = pd.read_parquet(run.outputs["answers"])
    assert answers.set_index("sample_id")["output"].to_dict() == {"a": "4", "b": "5", "c": "6", "d": "1", "e": "2"}
    # independent reference: the prompts' lengths against the references, by hand
    hits = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 0.0}
    scores = pd.read_parquet(run.outputs["scores"]).set_index("sample_id")["score"].to_dict()
    assert scores == hits
    overall = run.metrics[run.metrics["breakdown_key"].isna()].set_index("metric")
    assert overall.loc["length_match", "value"] == pytest.approx(4 / 5) and overall.loc["length_match", "n"] == 5
    by_category = run.metrics[run.metrics["breakdown_key"] == "category"].set_index("breakdown_value")
    assert by_category.loc["x", "value"] == pytest.approx(1.0)
    assert by_category.loc["y", "value"] == pytest.approx(2 / 3)

    mlflow_run = MlflowClient(default_tracking_uri()).get_run(run.mlflow_run_id)
    assert mlflow_run.data.params["task"] == "input_length"
    assert mlflow_run.data.metrics["length_match"] == pytest.approx(0.8)

    (plan,) = plan_suite(suite)
    assert (plan.model, plan.requests, plan.to_send) == ("m", 5, 0)
