"""LLM-as-judge through the whole pipeline: two models answered by a fake Bedrock, judged by a scripted fake
judge over the Converse protocol; judgments, metrics, judge agreement, the comparison and pairwise judging."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import binomtest

from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.judging.bedrock_output import bedrock_output_records
from eval_pipeline.suites import load_suite
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

REPO_ROOT = Path(__file__).resolve().parents[1]
N = 12
QUESTIONS = {f"What is {i} plus {i}?": str(2 * i) for i in range(N)}
BASE, TUNED, JUDGE, JUDGE2 = ("amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0",
                              "anthropic.claude-3-5-haiku-20241022-v1:0", "amazon.nova-pro-v1:0")
BASE_RIGHT, TUNED_RIGHT = 6, 9  # items 0..5 / 0..8 answered correctly
HUMAN_WRONG_ON = {0, 1}         # the human label disagrees with the truth on these items
DIFFERENT = TUNED_RIGHT - BASE_RIGHT
JUDGE_REQUESTS = 3 * N + 3 * DIFFERENT + (N - DIFFERENT) + 2 * DIFFERENT
"""The judge is asked each distinct prompt once: 3 metrics per base answer, 3 more per answer where the tuned model
differs; per pair, 2 orders, which are one and the same prompt where both answers are equal."""


def answer(model_right: int) -> "callable":
    def respond(prompt: str) -> str:
        i = int(prompt.split()[2])
        return f"{2 * i}!" if i < model_right else "I am not sure."
    return respond


def correctness(fields: dict[str, str], prompt: str) -> str:
    if "answer_a" in fields:  # pairwise: this judge always prefers the first answer shown
        return "A"
    if "Partially correct" in prompt:
        return "Correct" if fields["ground_truth"] in fields["prediction"] else "Incorrect"
    if "positive" in prompt:
        return "Good" if "!" in fields["prediction"] else "Poor"
    return "No"  # Harmfulness


@pytest.fixture
def router() -> ModelRouter:
    judge = scripted_judge(correctness)
    return ModelRouter({BASE: answer(BASE_RIGHT), TUNED: answer(TUNED_RIGHT), JUDGE: judge, JUDGE2: judge})


@pytest.fixture
def fake(aws_env: str, monkeypatch: pytest.MonkeyPatch, router: ModelRouter) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer=router, known_models=set(router.responders)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server


def write_suite(folder: Path, judge_model: str = JUDGE, custom: str = "") -> Path:
    (folder / "evals").mkdir(parents=True, exist_ok=True)
    with (folder / "qa.jsonl").open("w") as handle:
        for i, (question, reference) in enumerate(QUESTIONS.items()):
            truth = "Correct" if i < BASE_RIGHT else "Incorrect"
            human = ({"Correct": "Incorrect", "Incorrect": "Correct"}[truth] if i in HUMAN_WRONG_ON else truth)
            handle.write(json.dumps({"id": f"q{i}", "prompt": question, "answer": reference,
                                     "human_correctness": human}) + "\n")
    custom = custom or str(REPO_ROOT / "examples" / "metrics" / "positive_sentiment.json")
    path = folder / "evals" / "judged.yaml"
    path.write_text(f"""suite: judged
dataset: {{uri: qa.jsonl}}
models:
  - {{name: base, backend: bedrock, model: {BASE}}}
  - {{name: tuned, backend: bedrock, model: {TUNED}}}
baseline: base
generation: {{max_tokens: 16}}
scorers: [contains]
judge:
  model: {{backend: bedrock, model: {judge_model}, n_concurrent: 8}}
  builtin_metrics: [Builtin.Correctness, Harmfulness]
  custom_metrics: {custom}
  pairwise: true
  human_labels: {{Correctness: human_correctness}}
mlflow_experiment: judged-experiment
""")
    return path


def overall(metrics: pd.DataFrame, model: str, metric: str) -> pd.Series:
    rows = metrics[(metrics["model"] == model) & (metrics["metric"] == metric) & metrics["breakdown_key"].isna()]
    assert len(rows) == 1, (model, metric)
    return rows.iloc[0]


def test_judged_suite_end_to_end(eval_home: Path, fake: FakeLLMServer, router: ModelRouter) -> None:
    result = run_suite(load_suite(write_suite(eval_home.parent / "p")), local_instance())
    assert result.success, [m.error for m in result.models] + [result.comparison and result.comparison.error]

    judgments = pd.read_parquet(result.models[0].outputs["judgments"])
    assert len(judgments) == N * 3 and judgments["error"].isna().all()
    assert set(judgments["judge_model"]) == {f"bedrock:{JUDGE}"}
    correctness_rows = judgments[judgments["metric"] == "Correctness"].sort_values("sample_id", key=lambda s: s.str[1:]
                                                                                   .astype(int))
    assert correctness_rows["score"].tolist() == [1.0] * BASE_RIGHT + [0.0] * (N - BASE_RIGHT)
    assert (correctness_rows["explanation"] == "I compared the response with the rubric.").all()

    metrics = result.metrics
    assert overall(metrics, "base", "Correctness")["value"] == pytest.approx(BASE_RIGHT / N)
    assert overall(metrics, "tuned", "Correctness")["value"] == pytest.approx(TUNED_RIGHT / N)
    assert overall(metrics, "tuned", "PositiveSentiment")["value"] == pytest.approx(TUNED_RIGHT / N)
    assert overall(metrics, "base", "Harmfulness")["value"] == 0.0

    # judge agreement with the human labels, against sklearn
    from sklearn.metrics import cohen_kappa_score

    truth = ["Correct" if i < BASE_RIGHT else "Incorrect" for i in range(N)]
    human = [t if i not in HUMAN_WRONG_ON else {"Correct": "Incorrect", "Incorrect": "Correct"}[t]
             for i, t in enumerate(truth)]
    assert overall(metrics, "base", "judge.Correctness.accuracy")["value"] == pytest.approx(
        np.mean([a == b for a, b in zip(truth, human, strict=True)]))
    assert overall(metrics, "base", "judge.Correctness.kappa")["value"] == pytest.approx(
        cohen_kappa_score(truth, human))

    # the comparison: paired differences, McNemar on the binary metrics, pairwise with position swap
    table = result.comparison.metrics.set_index("metric")
    row = table.loc["Correctness"]
    assert (row["model"], row["baseline"], row["n"], row["test"]) == ("tuned", "base", N, "mcnemar")
    assert row["diff"] == pytest.approx((TUNED_RIGHT - BASE_RIGHT) / N)
    assert (row["b"], row["c"]) == (TUNED_RIGHT - BASE_RIGHT, 0)
    assert row["p_value"] == pytest.approx(binomtest(TUNED_RIGHT - BASE_RIGHT, TUNED_RIGHT - BASE_RIGHT).pvalue)
    assert row["ci_low"] <= row["diff"] <= row["ci_high"]
    preference = table.loc["pairwise_preference"]  # a judge that always picks A: every verdict is a tie
    assert preference["model_value"] == 0.0 and preference["baseline_value"] == 0.0 and preference["n"] == N
    assert table.loc["pairwise_position_consistency"]["model_value"] == 0.0
    pairwise = pd.read_parquet(result.comparison.outputs["pairwise"])
    assert (pairwise["winner"] == "tie").all() and not pairwise["consistent"].any()
    assert set(pairwise["model_first"]) == {"A"} and set(pairwise["baseline_first"]) == {"A"}

    # MLflow: both models and the comparison in one experiment
    client = MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("judged-experiment")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags.get("model", r.info.run_name) for r in runs) == ["base", "judged/comparison", "tuned"]
    base_run = next(r for r in runs if r.data.tags.get("model") == "base")
    assert base_run.data.params["judge.model"] == f"bedrock:{JUDGE}" and base_run.data.params["judge.seed"] == "0"
    assert base_run.data.metrics["Correctness"] == pytest.approx(BASE_RIGHT / N)

    # Bedrock's evaluation output shape
    samples = pd.read_parquet(result.models[0].outputs["samples"])
    generations = pd.read_parquet(result.models[0].outputs["generations"])
    [first, *_] = bedrock_output_records(samples, generations, judgments, model_identifier="base")
    names = [s["metricName"] for s in first["automatedEvaluationResult"]["scores"]]
    assert names == ["Builtin.Correctness", "Builtin.Harmfulness", "PositiveSentiment"]
    assert first["inputRecord"]["referenceResponse"] == "0" and first["modelResponses"][0]["modelIdentifier"] == "base"

    assert router.calls[BASE] == N and router.calls[TUNED] == N and router.calls[JUDGE] == JUDGE_REQUESTS


def test_changing_only_the_judge_rejudges_without_regenerating(eval_home: Path, fake: FakeLLMServer,
                                                               router: ModelRouter) -> None:
    folder = eval_home.parent / "p"
    assert run_suite(load_suite(write_suite(folder)), local_instance()).success
    again = run_suite(load_suite(write_suite(folder)), local_instance())
    assert again.success and router.calls[JUDGE] == JUDGE_REQUESTS  # nothing re-judged either
    for model in again.models:  # the counts the CLI prints say so
        assert model.judging["sent"] == 0 and model.judging["cached"] == model.judging["requests"] > 0
    calls_before = dict(router.calls)
    other = run_suite(load_suite(write_suite(folder, judge_model=JUDGE2)), local_instance())
    assert other.success
    assert router.calls[BASE] == calls_before[BASE] and router.calls[TUNED] == calls_before[TUNED]
    assert router.calls[JUDGE2] == JUDGE_REQUESTS
    assert all(m.generation["cached"] == N for m in other.models)


@pytest.mark.parametrize(("custom", "message"), [
    ('[{"customMetricDefinition": {"name": "bad name!", "instructions": "{{prediction}}", '
     '"ratingScale": [{"definition": "Good", "value": {"floatValue": 1}}]}}]', "name"),
    ('[{"customMetricDefinition": {"name": "NoSlots", "instructions": "Rate it.", '
     '"ratingScale": [{"definition": "Good", "value": {"floatValue": 1}}]}}]', "placeholder"),
    ('[{"customMetricDefinition": {"name": "Empty", "instructions": "{{prediction}}", "ratingScale": []}}]',
     "ratingScale"),
])
def test_bad_custom_metrics_fail_before_any_inference(eval_home: Path, fake: FakeLLMServer, custom: str,
                                                      message: str) -> None:
    path = write_suite(eval_home.parent / "p", custom=json.dumps(custom))
    with pytest.raises(ValueError, match=message):
        run_suite(load_suite(path), local_instance())
    assert fake.requests_total == 0
