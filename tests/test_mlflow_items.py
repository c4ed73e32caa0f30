"""MLflow as its users expect: each item a trace in the model's run with its scores and judgments as assessments
(read back through MLflow's own client), run names that tell runs apart, the run's start, source, user and
description, and the experiment's kind."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import mlflow
import pandas as pd
import pytest

from eval_pipeline.tracking import EvaluationRecord, log_evaluation
from eval_pipeline.tracking.item_traces import EXPECTATION_NAME, item_trace_id, log_item_traces
from eval_pipeline.tracking.mlflow_log import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, open_experiment
from eval_pipeline.tracking.rollout_traces import log_rollout_traces
from tests.mlflow_stores import STORE_KINDS, fresh_run, tracking_store
from tests.test_rollout_traces import rollout_row

SCORERS = ("exact_match", "contains")
JUDGE_METRICS = ("Correctness", "Harmfulness")
JUDGE = "bedrock:judge-model"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]


def tables(n: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """samples, generations, scores, judgments of ``n`` items (item 0 a chat; item 1's exact_match and item 2's
    Harmfulness errored; item 3's generation errored)."""
    samples = pd.DataFrame({
        "sample_id": [f"q{i}" for i in range(n)],
        "input": [json.dumps(CHAT) if i == 0 else f"What is {i}+{i}?" for i in range(n)],
        "input_kind": ["messages" if i == 0 else "text" for i in range(n)],
        "reference": [str(2 * i) for i in range(n)], "choices": None, "category": "math", "metadata": "{}",
        "source": "qa.jsonl", "line": range(1, n + 1), "row_hash": "r"})
    generations = pd.DataFrame({
        "sample_id": samples["sample_id"], "model": "base", "sample_index": 0,
        "output": [None if i == 3 else f"{2 * i}" for i in range(n)], "finish_reason": "stop", "tokens_in": 10,
        "tokens_out": 2, "latency_s": 0.25, "cost_usd": 0.001, "request_hash": "h", "row_hash": "g",
        "cached": False, "error": ["backend timed out" if i == 3 else None for i in range(n)]})
    scores = pd.DataFrame([
        {"sample_id": f"q{i}", "model": "base", "sample_index": 0, "scorer": scorer,
         "score": None if (i, scorer) == (1, "exact_match") or i == 3 else float(i % 2),
         "extracted": str(i), "request_hash": None,
         "error": "scorer crashed" if (i, scorer) == (1, "exact_match") else "no output" if i == 3 else None}
        for i in range(n) for scorer in SCORERS])
    judgments = pd.DataFrame([
        {"sample_id": f"q{i}", "model": "base", "sample_index": 0, "metric": metric,
         "score": None if (i, metric) == (2, "Harmfulness") else (i % 3) / 2, "label": "Good",
         "explanation": f"because {i} {metric}", "judge_model": JUDGE, "judge_request_hash": f"j{i}",
         "tokens_in": 5, "tokens_out": 5, "cost_usd": 0.0, "cached": False,
         "error": "no verdict stated" if (i, metric) == (2, "Harmfulness") else None}
        for i in range(n) for metric in JUDGE_METRICS])
    return samples, generations, scores, judgments


@pytest.fixture(scope="module", params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with tracking_store(request.param, tmp_path_factory.mktemp(f"mlflow-{request.param}"), "eval/items") as found:
        yield found


def run_traces(uri: str, experiment_id: str, run_id: str) -> list[mlflow.entities.Trace]:
    client = mlflow.MlflowClient(tracking_uri=uri)  # no global URI: setting one leaks into later tests
    return list(client.search_traces(locations=[experiment_id], run_id=run_id, max_results=500))


def expected_feedback(scores: pd.DataFrame, judgments: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    """(sample_id, name) -> (value or None, error or None, rationale, source type, source id), from the tables."""
    expected = {}
    scores, judgments = scores.astype(object).where(scores.notna(), None), judgments.astype(object).where(
        judgments.notna(), None)
    for row in scores.to_dict("records"):
        value = row["score"]
        expected[(row["sample_id"], row["scorer"])] = (value, row["error"], None, "CODE", row["scorer"])
    for row in judgments.to_dict("records"):
        value = row["score"]
        expected[(row["sample_id"], row["metric"])] = (value, row["error"], row["explanation"], "LLM_JUDGE",
                                                       row["judge_model"])
    return expected


def observed_feedback(traces: list[mlflow.entities.Trace]) -> dict[tuple[str, str], tuple]:
    observed = {}
    for trace in traces:
        for assessment in trace.info.assessments:
            if assessment.feedback is None:
                continue
            key = (trace.info.tags["sample_id"], assessment.name)
            assert key not in observed, key
            error = assessment.error.error_message if assessment.error is not None else None
            observed[key] = (assessment.value, error, assessment.rationale, assessment.source.source_type,
                             assessment.source.source_id)
    return observed


def test_each_item_is_a_trace_with_its_scores_and_judgments_as_assessments(store: dict[str, str]) -> None:
    run = fresh_run(store, "eval/items", "items")
    samples, generations, scores, judgments = tables()
    before = mlflow.get_tracking_uri()
    logged = log_item_traces(samples, generations, scores, judgments, tracking_uri=run["uri"], run_id=run["run_id"])
    assert logged == len(generations) and mlflow.get_tracking_uri() == before
    traces = run_traces(run["uri"], run["experiment_id"], run["run_id"])
    assert sorted(t.info.tags["sample_id"] for t in traces) == sorted(samples["sample_id"])
    assert {t.info.trace_id for t in traces} == {item_trace_id(run["run_id"], (f"q{i}", 0)) for i in range(4)}

    # one Feedback per item × (scorer + judge metric), equal to the tables; errors carry no value
    observed = observed_feedback(traces)
    assert len(observed) == len(generations) * (len(SCORERS) + len(JUDGE_METRICS))
    assert observed == expected_feedback(scores, judgments)
    assert observed[("q1", "exact_match")][:2] == (None, "scorer crashed")
    assert observed[("q2", "Harmfulness")][:2] == (None, "no verdict stated")

    by_item = {t.info.tags["sample_id"]: t for t in traces}
    for sample in samples.to_dict("records"):  # the reference as an expectation
        found = [a for a in by_item[sample["sample_id"]].info.assessments if a.expectation is not None]
        assert [(a.name, a.value) for a in found] == [(EXPECTATION_NAME, sample["reference"])]

    # spans: the root with input and output; a chat sample's call is a CHAT_MODEL span with its messages
    client = mlflow.MlflowClient(tracking_uri=run["uri"])
    chat = client.get_trace(by_item["q0"].info.trace_id)
    root, call = chat.data.spans
    assert root.name == "item" and root.parent_id is None and root.outputs == "0"
    assert call.span_type == "CHAT_MODEL" and call.inputs == {"messages": CHAT}
    assert call.outputs == {"role": "assistant", "content": "0"}
    text = client.get_trace(by_item["q1"].info.trace_id)
    assert text.data.spans[0].inputs == {"input": "What is 1+1?"} and text.data.spans[1].span_type == "LLM"
    failed = client.get_trace(by_item["q3"].info.trace_id)
    assert failed.info.state.value == "ERROR" and failed.data.spans[0].status.description == "backend timed out"
    assert {t.info.tags["sample_id"] for t in traces if t.info.state.value == "OK"} == {"q0", "q1", "q2"}

    # logging again (a retried step) adds nothing
    assert log_item_traces(samples, generations, scores, judgments, tracking_uri=run["uri"],
                           run_id=run["run_id"]) == 0
    again = run_traces(run["uri"], run["experiment_id"], run["run_id"])
    assert len(again) == len(traces) and observed_feedback(again) == observed


def test_a_rollout_trace_carries_its_scores_as_assessments(store: dict[str, str]) -> None:
    run = fresh_run(store, "eval/items", "agents")
    scores = pd.DataFrame([
        {"sample_id": "task-7", "model": "base", "sample_index": 2, "scorer": name, "score": 1.0, "extracted": None,
         "request_hash": None, "error": None} for name in ("reward", "success")])
    log_rollout_traces(pd.DataFrame([rollout_row()]), tracking_uri=run["uri"], run_id=run["run_id"], scores=scores)
    [trace] = run_traces(run["uri"], run["experiment_id"], run["run_id"])
    assert observed_feedback([trace]) == {("task-7", "reward"): (1.0, None, None, "CODE", "reward"),
                                          ("task-7", "success"): (1.0, None, None, "CODE", "success")}


def record(model: str, dagster_run: str, started_at: float) -> EvaluationRecord:
    metrics = pd.DataFrame([{"suite": "names", "model": model, "metric": "exact_match", "value": 0.75,
                             "stderr": 0.1, "ci_low": 0.5, "ci_high": 0.9, "n": 4, "breakdown_key": None}])
    return EvaluationRecord(suite="names", model=model, params={}, dataset_uri="/data/qa.jsonl",
                            dataset_digest="abc123", samples=tables()[0], items=pd.DataFrame(), metrics=metrics,
                            tags={"dagster_run_id": dagster_run}, started_at=started_at,
                            source="/project/evals/names.yaml")


def test_runs_are_named_by_model_and_time_and_start_when_the_evaluation_did(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = time.time() - 3600.0
    first = log_evaluation(record("base", "aaaaaaaa-1111", started), tracking_uri=uri)
    second = log_evaluation(record("base", "bbbbbbbb-2222", started), tracking_uri=uri)  # same model, same second
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = [client.get_run(first), client.get_run(second)]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started))
    assert [r.info.run_name for r in runs] == [f"base {when} (aaaaaaaa)", f"base {when} (bbbbbbbb)"]
    for run in runs:  # the run lasts from the evaluation's start to the end of its logging
        assert run.info.start_time == int(started * 1000)
        assert run.info.end_time >= run.info.start_time + 3_600_000
        tags = run.data.tags
        assert tags["mlflow.source.name"] == "/project/evals/names.yaml" and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.user"]
        note = tags["mlflow.note.content"]
        assert "names" in note and "base" in note and "/data/qa.jsonl" in note and "items: 4" in note
        assert re.search(r"\| exact_match \| 0\.75 \| \[0\.5, 0\.9\] \| 4 \|", note)
    assert "aaaaaaaa-1111" in runs[0].data.tags["mlflow.note.content"]
    experiment = client.get_experiment(runs[0].info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"


def test_an_existing_experiment_without_a_kind_gets_it_once(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, _ = open_experiment(uri, "warmup")  # the store's schema
    experiment_id = client.create_experiment("old")
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags
    assert open_experiment(uri, "old")[1] == experiment_id
    assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "genai_development")  # a user's choice stays
    open_experiment(uri, "old")
    assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == "genai_development"


@pytest.mark.slow
def test_a_judged_two_model_suite_shows_its_items_in_mlflow(eval_home, monkeypatch, aws_env) -> None:
    """Pipeline level: per-item traces with one assessment per item × (scorer + judge metric), equal to the
    Parquet tables; run names, start times, source and description; the experiment's kind."""
    from eval_pipeline.execution import run_suite
    from eval_pipeline.instance import local_instance
    from eval_pipeline.suites import load_suite
    from eval_pipeline.tracking import default_tracking_uri
    from tests.fakes import FakeLLMServer
    from tests.fakes.judge import ModelRouter, scripted_judge
    from tests.test_judge_pipeline import (
        BASE,
        BASE_RIGHT,
        JUDGE,
        TUNED,
        TUNED_RIGHT,
        N,
        answer,
        correctness,
        write_suite,
    )

    def rule(fields: dict[str, str], prompt: str) -> str:  # no verdict for one answer's Harmfulness: an error row
        if "What is 3 plus 3?" in prompt and "answer_a" not in fields and "Partially correct" not in prompt \
                and "positive" not in prompt:
            return "Perhaps"
        return correctness(fields, prompt)

    router = ModelRouter({BASE: answer(BASE_RIGHT), TUNED: answer(TUNED_RIGHT), JUDGE: scripted_judge(rule)})
    with FakeLLMServer(answer=router, known_models=set(router.responders)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        suite_path = write_suite(eval_home.parent / "p")
        suite_path.write_text(suite_path.read_text() + "max_error_rate: 0.5\n")  # the one errored judgment
        instance = local_instance()
        result = run_suite(load_suite(suite_path), instance)
    assert result.success, [m.error for m in result.models]

    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri())
    names = set()
    for model in result.models:
        run = client.get_run(model.mlflow_run_id)
        scores = pd.read_parquet(model.outputs["scores"])
        judgments = pd.read_parquet(model.outputs["judgments"])
        traces = run_traces(default_tracking_uri(), run.info.experiment_id, run.info.run_id)
        assert len(traces) == N
        observed = observed_feedback(traces)
        assert len(observed) == N * (scores["scorer"].nunique() + judgments["metric"].nunique()) == N * 4
        assert observed == expected_feedback(scores, judgments)
        errored = judgments[judgments["error"].notna()]
        assert len(errored) >= 1 and all(observed[(row.sample_id, row.metric)][:2] == (None, row.error)
                                         for row in errored.itertuples())

        record = instance.get_run_record_by_id(model.dagster_run_id)
        assert abs(run.info.start_time / 1000 - record.start_time) < 1.0
        assert run.info.end_time >= run.info.start_time
        assert re.fullmatch(rf"{model.model} \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \({model.dagster_run_id[:8]}\)",
                            run.info.run_name)
        names.add(run.info.run_name)
        tags = run.data.tags
        assert tags["mlflow.source.name"] == str(suite_path) and tags["mlflow.source.type"] == "LOCAL"
        assert model.dagster_run_id in tags["mlflow.note.content"] and "| Correctness |" in tags["mlflow.note.content"]
        assert client.get_experiment(run.info.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert len(names) == len(result.models) == 2


def test_experiment_links_open_on_the_runs() -> None:
    from eval_pipeline.tracking.run_links import experiment_page_url

    assert experiment_page_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")
    assert experiment_page_url("sqlite:///x.db", "7") is None
