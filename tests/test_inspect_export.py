"""Exporting a run as Inspect AI logs (issue 14, item 5): each model's ``.eval`` file, written by Inspect's own writer
and read back with ``inspect_ai.log.read_eval_log``, holds the same items, outputs, errors, scores, judgments, tool
calls and metrics as the Parquet tables (read with pandas, independently of the exporter's own reading)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from inspect_ai.log import EvalLog, read_eval_log

from eval_pipeline.cli import main
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.task_kinds import TASK_KINDS
from tests.report_suites import judged_suite, judged_tables, write_judged, write_stage

REPO = Path(__file__).resolve().parents[1]


def score_of(value: Any) -> Any:
    """A score as the tables hold it (NaN: no score) in a form that compares equal: None for NaN."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def text_of(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def logged_results(log: EvalLog) -> list[tuple[str, int, str, Any, str | None]]:
    """(sample id, sample index, metric, score, error) for every Score of the log."""
    return sorted((str(s.id), s.epoch - 1, name, score_of(score.value), (score.metadata or {}).get("error"))
                  for s in log.samples or [] for name, score in (s.scores or {}).items())


def table_results(frame: pd.DataFrame, column: str) -> list[tuple[str, int, str, Any, str | None]]:
    return sorted((str(r["sample_id"]), int(r["sample_index"]), str(r[column]), score_of(r["score"]),
                   text_of(r["error"])) for r in frame.to_dict("records"))


def overall_metrics(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    rows = frame[frame["breakdown_key"].isna()]
    return {str(r["metric"]): {k: float(r[k]) for k in ("value", "stderr", "ci_low", "ci_high") if pd.notna(r[k])}
            for r in rows.to_dict("records")}


@pytest.fixture(scope="module")
def judged_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Path]]:
    """The judged two-model tables written as outputs and exported by the CLI (one export for the module's tests)."""
    folder = tmp_path_factory.mktemp("judged")
    judged_suite(folder / "suite")
    write_judged(folder / "outputs", judged_tables())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVAL_PIPELINE_HOME", str(folder / "home"))
        patch.setenv("EVAL_PIPELINE_OUTPUTS", str(folder / "outputs"))
        assert main(["export-inspect", str(folder / "suite" / "rep.yaml")]) == 0
    logs = {model: folder / "outputs" / "rep" / "inspect" / f"rep_{model}.eval" for model in ("base", "tuned")}
    return folder / "outputs" / "rep", folder / "suite", logs


def test_judged_run_reads_back_as_the_tables(judged_export: tuple[Path, Path, dict[str, Path]]) -> None:
    outputs, _, logs = judged_export
    samples = pd.read_parquet(outputs / "samples.parquet")
    for model, path in logs.items():
        log = read_eval_log(str(path))
        generations = pd.read_parquet(outputs / "generations" / f"{model}.parquet")
        scores = pd.read_parquet(outputs / "scores" / f"{model}.parquet")
        judgments = pd.read_parquet(outputs / "judgments" / f"{model}.parquet")
        metrics = pd.read_parquet(outputs / "metrics" / f"{model}.parquet")

        assert log.status == "success" and log.eval.task == "rep"
        assert log.eval.model == model and set(generations["model"]) == {model} == set(scores["model"])
        assert len(log.samples) == len(generations) == log.results.total_samples
        assert log.eval.dataset.samples == len(samples)
        by_id = {str(s.id): s for s in log.samples}
        assert set(by_id) == set(generations["sample_id"])
        # outputs and errors: an errored generation is the sample's error, never an answer
        for row in generations.to_dict("records"):
            sample = by_id[row["sample_id"]]
            assert sample.epoch == row["sample_index"] + 1
            assert (sample.error.message if sample.error else None) == text_of(row["error"])
            assert sample.output.completion == (text_of(row["output"]) or "")
            assert sample.output.model == model
        assert log.results.completed_samples == int(generations["error"].isna().sum())
        # one Score per scorer and judge metric per item, equal to the rows (errors included, NaN for no score)
        assert logged_results(log) == sorted(table_results(scores, "scorer") + table_results(judgments, "metric"))
        for row in judgments.to_dict("records"):
            score = by_id[row["sample_id"]].scores[row["metric"]]
            assert score.answer == text_of(row["label"])
            assert score.explanation == (text_of(row["explanation"]) or text_of(row["error"]))
            assert score.metadata["judge_model"] == row["judge_model"]
        # input and target from the samples table
        reference = dict(zip(samples["sample_id"], samples["reference"], strict=True))
        prompts = dict(zip(samples["sample_id"], samples["input"], strict=True))
        for sample in log.samples:
            assert sample.target == reference[str(sample.id)] and sample.input == prompts[str(sample.id)]
            assert sample.metadata["category"] == samples.set_index("sample_id").loc[str(sample.id), "category"]
        # aggregated results: the metrics table's overall rows, and one entry per breakdown value
        exported = {score.name: {k: m.value for k, m in score.metrics.items() if "=" not in k}
                    for score in log.results.scores}
        assert exported == overall_metrics(metrics)
        breakdowns = metrics[metrics["breakdown_key"].notna()]
        for row in breakdowns.to_dict("records"):
            score = next(s for s in log.results.scores if s.name == row["metric"])
            entry = score.metrics[f"{row['breakdown_key']}={row['breakdown_value']}"]
            assert entry.value == pytest.approx(row["value"]) and entry.group == row["breakdown_key"]


def test_export_command_picks_models_and_refuses_bad_input(
        judged_export: tuple[Path, Path, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    outputs, suite_folder, _ = judged_export
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVAL_PIPELINE_OUTPUTS", str(outputs.parent))
    suite = str(suite_folder / "rep.yaml")
    capsys.readouterr()
    assert main(["export-inspect", suite, "--model", "tuned", "--output", str(tmp_path / "logs")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "logs" / "rep_tuned.eval")]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["rep_tuned.eval"]
    assert read_eval_log(str(tmp_path / "logs" / "rep_tuned.eval"), header_only=True).eval.model == "tuned"

    assert main(["export-inspect", suite, "--model", "nope"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err
    monkeypatch.setenv("EVAL_PIPELINE_OUTPUTS", str(tmp_path / "empty"))
    assert main(["export-inspect", suite]) == 2
    assert "nothing to export for suite 'rep'" in capsys.readouterr().err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export-inspect", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    examples = text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert examples and all("eval-pipeline export-inspect" in line for line in examples)
    assert "exit codes:" in text and "eval-pipeline[inspect]" in text


def test_without_inspect_the_error_names_the_extra(judged_export: tuple[Path, Path, dict[str, Path]],
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Inspect not installed (its import fails as it does when absent): exit 2 with the extra to install."""
    outputs, suite_folder, _ = judged_export
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVAL_PIPELINE_OUTPUTS", str(outputs.parent))
    for name in [m for m in sys.modules if m == "inspect_ai" or m.startswith("inspect_ai.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # what `import inspect_ai` meets when it is not installed
    assert main(["export-inspect", str(suite_folder / "rep.yaml"), "--output", str(tmp_path / "logs")]) == 2
    assert "pip install 'eval-pipeline[inspect]'" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


def rollout_row(task: str, member: int, *, reward: float | None, error: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": "Use the calculator."}, {"role": "user", "content": f"Solve {task}"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": f"c{member}", "name": "calculator", "arguments": '{"expression": "17+25"}'},
                    {"id": f"d{member}", "name": "calculator", "arguments": "not json"}]},
                {"role": "tool", "content": "42", "tool_call_id": f"c{member}", "name": "calculator"},
                {"role": "tool", "content": "bad expression", "tool_call_id": f"d{member}", "name": "calculator",
                 "is_error": True},
                {"role": "assistant", "content": f"The answer is 42 ({member})"}]
    return {"sample_id": task, "model": "smollm2", "sample_index": member, "rollout_id": f"{task}-{member}",
            "environment": "python:calc", "turns": "[]", "messages": json.dumps(messages), "num_turns": 2,
            "reward": reward, "success": None if reward is None else reward >= 1.0,
            "termination": "error" if error else "done", "error": error,
            "error_source": "agent" if error else None, "latency_s": 0.5}


def test_rollout_run_exports_conversations_with_tool_calls(tmp_path: Path) -> None:
    from eval_pipeline.interop.inspect_export import write_suite_logs
    from eval_pipeline.report import read_suite_tables
    from eval_pipeline.resources.parquet_io import ParquetIOManager

    suite = load_suite(REPO / "evals" / "agent_quickstart.yaml")
    kind = TASK_KINDS.get(suite.task)
    samples = pd.DataFrame({"sample_id": ["calc-001", "calc-002"], "input": ["17 + 25?", "9 * 8?"],
                            "input_kind": "text", "reference": ["42", "72"],
                            "category": ["one_operation", "one_operation"], "metadata": "{}"})
    rollouts = pd.DataFrame([rollout_row("calc-001", 0, reward=1.0), rollout_row("calc-001", 1, reward=0.0),
                             rollout_row("calc-002", 0, reward=None, error="model timed out"),
                             rollout_row("calc-002", 1, reward=1.0)])
    scores = kind.score(suite, samples, rollouts)
    metrics = kind.aggregate(suite, samples, rollouts, scores)
    base = tmp_path / "outputs"
    write_stage(base, suite.suite, "samples", samples)
    for stage, frame in (("rollouts", rollouts), ("scores", scores), ("metrics", metrics)):
        write_stage(base, suite.suite, stage, frame, "smollm2")
    paths = write_suite_logs(read_suite_tables(suite, ParquetIOManager(base_path=str(base))), tmp_path / "logs")
    log = read_eval_log(paths["smollm2"])

    stored = pd.read_parquet(base / suite.suite / "rollouts" / "smollm2.parquet")
    stored_scores = pd.read_parquet(base / suite.suite / "scores" / "smollm2.parquet")
    assert log.eval.model == "smollm2" and log.eval.task == suite.suite
    assert sorted((str(s.id), s.epoch - 1) for s in log.samples) == sorted(
        zip(stored["sample_id"], stored["sample_index"].astype(int), strict=True))
    assert logged_results(log) == table_results(stored_scores, "scorer")
    assert log.eval.config.epochs == 2
    for row in stored.to_dict("records"):
        sample = next(s for s in log.samples if s.id == row["sample_id"] and s.epoch == row["sample_index"] + 1)
        assert (sample.error.message if sample.error else None) == (
            f"{row['error']} ({row['error_source']})" if text_of(row["error"]) else None)
        original = json.loads(row["messages"])
        assert [m.role for m in sample.messages] == [m["role"] for m in original]
        calls = sample.messages[2].tool_calls
        assert [(c.id, c.function) for c in calls] == [(c["id"], c["name"]) for c in original[2]["tool_calls"]]
        assert calls[0].arguments == {"expression": "17+25"} and calls[0].parse_error is None
        assert calls[1].arguments == {} and calls[1].parse_error  # the model's bad JSON is kept as an error
        assert [(m.tool_call_id, m.content) for m in sample.messages[3:5]] == [
            (original[3]["tool_call_id"], "42"), (original[4]["tool_call_id"], "bad expression")]
        assert sample.messages[3].error is None and sample.messages[4].error.message == "bad expression"
        assert sample.output.completion == original[-1]["content"]
    assert {s.name for s in log.results.scores} == set(metrics.loc[metrics["breakdown_key"].isna(), "metric"])


def test_traces_run_exports_sessions_with_their_tool_calls(tmp_path: Path) -> None:
    from eval_pipeline.interop.inspect_export import write_suite_logs
    from eval_pipeline.report import read_suite_tables
    from eval_pipeline.resources.parquet_io import ParquetIOManager

    spans_file = REPO / "examples" / "data" / "traces" / "travel_agent_spans.jsonl"
    truth = REPO / "examples" / "data" / "traces" / "travel_agent_ground_truth.json"
    (tmp_path / "t.yaml").write_text(f"""suite: agent_traces
task: traces
schedule: null
max_error_rate: 0.2
traces:
  evaluators: [Builtin.TrajectoryExactOrderMatch, Builtin.TrajectoryAnyOrderMatch]
  dataSourceConfig: {{files: {{paths: ["{spans_file}"]}}}}
  evaluationMetadata: "{truth}"
models:
  - {{name: travel_agent, backend: recorded, model: travel_agent.DEFAULT}}
""")
    suite = load_suite(tmp_path / "t.yaml")
    kind = TASK_KINDS.get(suite.task)
    samples = kind.load_samples(suite)
    spans = kind.produce(suite, suite.models[0], samples, None, lambda line: None).frame
    scores = kind.score(suite, samples, spans)
    metrics = kind.aggregate(suite, samples, spans, scores)
    base = tmp_path / "outputs"
    write_stage(base, suite.suite, "samples", samples)
    for stage, frame in (("traces", spans), ("scores", scores), ("metrics", metrics)):
        write_stage(base, suite.suite, stage, frame, "travel_agent")
    log = read_eval_log(write_suite_logs(read_suite_tables(suite, ParquetIOManager(base_path=str(base))),
                                         tmp_path / "logs")["travel_agent"])

    stored_spans = pd.read_parquet(base / suite.suite / "traces" / "travel_agent.parquet")
    stored = pd.read_parquet(base / suite.suite / "scores" / "travel_agent.parquet")
    assert sorted(str(s.id) for s in log.samples) == sorted(set(stored_spans["session_id"]) | set(stored["sample_id"]))
    exported = sorted((str(s.id), name, score_of(score.value)) for s in log.samples
                      for name, score in (s.scores or {}).items())
    assert exported == sorted((str(r["sample_id"]), str(r["scorer"]), score_of(r["score"]))
                              for r in stored.to_dict("records"))
    for sample in log.samples:
        own = stored_spans[stored_spans["session_id"] == str(sample.id)]
        calls = [c.function for m in sample.messages if m.role == "assistant" for c in (m.tool_calls or [])]
        assert sorted(calls) == sorted(own.loc[own["kind"] == "tool", "tool_name"].tolist()), sample.id
        results = [m for m in sample.messages if m.role == "tool"]
        assert len(results) == len(calls)
        call_ids = [c.id for m in sample.messages if m.role == "assistant" for c in (m.tool_calls or [])]
        assert sorted(m.tool_call_id for m in results) == sorted(call_ids)  # each result answers its own call


def test_multiple_choice_run_exports_choices_and_both_accuracies(tmp_path: Path) -> None:
    from eval_pipeline.interop.inspect_export import write_suite_logs
    from eval_pipeline.report import read_suite_tables
    from eval_pipeline.resources.parquet_io import ParquetIOManager

    (tmp_path / "mc.jsonl").write_text(json.dumps({"id": "m0", "question": "q", "choices": ["a", "b"], "answer": 0}))
    (tmp_path / "mc.yaml").write_text("suite: mc\ntask: multiple_choice\ndataset: {uri: mc.jsonl}\nmodels:\n"
                                      "  - {name: served, backend: openai, base_url: 'http://127.0.0.1:9/v1', "
                                      "model: m}\n")
    suite = load_suite(tmp_path / "mc.yaml")
    choices = [["red", "blue", "green"], ["cat", "dog"], ["1", "2", "3", "4"]]
    samples = pd.DataFrame({"sample_id": ["m0", "m1", "m2"], "input": ["Sky?", "Barks?", "2+2?"], "input_kind": "text",
                            "reference": ["1", "1", "3"], "choices": [json.dumps(c) for c in choices],
                            "metadata": "{}"})
    generations = pd.DataFrame({"sample_id": ["m0", "m1", "m2"], "model": "served", "sample_index": 0,
                                "output": ["1", "0", None], "error": [None, None, "connection refused"]})
    scores = pd.DataFrame([{"sample_id": s, "model": "served", "sample_index": 0, "scorer": metric, "score": value,
                            "error": None if value is not None else "generation failed"}
                           for s, values in (("m0", (1.0, 1.0)), ("m1", (0.0, 1.0)), ("m2", (None, None)))
                           for metric, value in zip(("acc", "acc_norm"), values, strict=True)])
    metrics = pd.DataFrame([{"suite": "mc", "model": "served", "metric": m, "value": v, "stderr": 0.5, "ci_low": 0.0,
                             "ci_high": 1.0, "n": 2, "errors": 1} for m, v in (("acc", 0.5), ("acc_norm", 1.0))])
    base = tmp_path / "outputs"
    write_stage(base, "mc", "samples", samples)
    for stage, frame in (("generations", generations), ("scores", scores), ("metrics", metrics)):
        write_stage(base, "mc", stage, frame, "served")
    log = read_eval_log(write_suite_logs(read_suite_tables(suite, ParquetIOManager(base_path=str(base))),
                                         tmp_path / "logs")["served"])

    stored = pd.read_parquet(base / "mc" / "scores" / "served.parquet")
    assert logged_results(log) == table_results(stored, "scorer")
    assert {str(s.id): (s.choices, s.target) for s in log.samples} == {
        sample_id: (c, reference) for sample_id, c, reference in zip(samples["sample_id"], choices,
                                                                     samples["reference"], strict=True)}
    assert {str(s.id): s.error.message for s in log.samples if s.error} == {"m2": "connection refused"}
    assert {s.name: s.metrics["value"].value for s in log.results.scores} == {"acc": 0.5, "acc_norm": 1.0}
