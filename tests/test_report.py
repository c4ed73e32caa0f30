"""The suite report's data: the page's embedded JSON holds exactly what the Parquet tables hold (read back here
independently with pandas), for a judged two-model suite (whole and sharded), a rollout suite and a traces suite;
a model without metrics is left out; the page is one file with no network reference."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.report import RunInfo, read_suite_tables, write_suite_report
from eval_pipeline.resources.parquet_io import ParquetIOManager
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.task_kinds import TASK_KINDS
from tests.report_suites import judged_suite, judged_tables, write_judged, write_stage

REPO = Path(__file__).resolve().parents[1]
DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def page_json(path: str) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    match = DATA.search(text)
    assert match is not None
    return json.loads(match.group(1))


def cell_frame(data: dict[str, Any], model: str) -> pd.DataFrame:
    """The page's results of one model as rows: sample_id, sample_index, metric, score, error, label, explanation."""
    items = data["items"]
    rows = []
    for metric, cells in data["cells"][model]["scores"].items():
        for i, cell in enumerate(cells):
            for result in cell or []:
                padded = [*result, None, None, None][:5]
                rows.append({"sample_id": items["sample_id"][i], "sample_index": items["sample_index"][i],
                             "metric": metric, "score": padded[0], "error": padded[2], "label": padded[3],
                             "explanation": padded[4]})
    return pd.DataFrame(rows)


def table_results(scores: pd.DataFrame, judgments: pd.DataFrame | None) -> pd.DataFrame:
    frames = [scores.rename(columns={"scorer": "metric"})[["sample_id", "sample_index", "metric", "score", "error"]]
              .assign(label=None, explanation=None)]
    if judgments is not None:
        frames.append(judgments[["sample_id", "sample_index", "metric", "score", "error", "label", "explanation"]])
    return pd.concat(frames, ignore_index=True)


def none_for_nan(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value


def same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    def canonical(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
        frame = frame.astype(object).where(frame.notna(), None)
        return sorted(tuple(str(v) for v in row) for row in frame[sorted(frame.columns)].itertuples(index=False))

    assert canonical(left) == canonical(right)


@pytest.fixture
def judged(tmp_path: Path) -> tuple[Any, Path, dict[str, Any]]:
    suite = judged_suite(tmp_path / "suite")
    tables = judged_tables()
    write_judged(tmp_path / "outputs", tables)
    return suite, tmp_path / "outputs", tables


def test_judged_two_model_page_data_equals_the_tables(judged: tuple[Any, Path, dict[str, Any]]) -> None:
    suite, base, _ = judged
    reader = ParquetIOManager(base_path=str(base))
    gate = {"check": "error_rate", "model": "base", "passed": False, "observed": 0.06, "allowed": 0.0,
            "reason": "6% of metric inputs errored", "detail": {}}
    path = write_suite_report(suite, reader, runs={"base": RunInfo("dagster-run-1", "mlflow-run-1", gates=[gate])})
    assert path == str(base / "rep" / "report.html")
    html = Path(path).read_text(encoding="utf-8")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    data = page_json(path)

    samples = pd.read_parquet(base / "rep" / "samples.parquet")
    assert data["items"]["sample_id"] == samples["sample_id"].tolist()  # one row per item, in the samples' order
    assert data["items"]["input"] == samples["input"].tolist()
    assert data["items"]["reference"] == samples["reference"].tolist()
    assert data["items"]["breakdowns"]["category"] == samples["category"].tolist()
    assert [m["name"] for m in data["models"]] == ["base", "tuned"]
    assert data["models"][0] | {"gates": None} == {"name": "base", "dagster_run_id": "dagster-run-1",
                                                  "mlflow_run_id": "mlflow-run-1", "gates": None,
                                                  "judge_warnings": []}
    assert data["models"][0]["gates"] == [gate]

    for model in ("base", "tuned"):
        generations = pd.read_parquet(base / "rep" / "generations" / f"{model}.parquet")
        scores = pd.read_parquet(base / "rep" / "scores" / f"{model}.parquet")
        judgments = pd.read_parquet(base / "rep" / "judgments" / f"{model}.parquet")
        metrics = pd.read_parquet(base / "rep" / "metrics" / f"{model}.parquet")
        cells = data["cells"][model]
        order = {sid: i for i, sid in enumerate(data["items"]["sample_id"])}
        for row in generations.itertuples(index=False):
            i = order[row.sample_id]
            assert cells["output"][i] == none_for_nan(row.output) and cells["error"][i] == none_for_nan(row.error)
        same_rows(cell_frame(data, model), table_results(scores, judgments))
        page_metrics = pd.DataFrame([r for r in data["metrics"] if r["model"] == model]).drop(columns="model")
        same_rows(page_metrics, metrics.drop(columns=["suite", "model"])[page_metrics.columns])

    # the pass flags follow the stated rule: 1 for a score of 1 (every metric here scores in [0, 1])
    for model in ("base", "tuned"):
        for cells in data["cells"][model]["scores"].values():
            for cell in cells:
                for result in cell or []:
                    assert result[1] == (None if result[0] is None else int(result[0] == 1.0))
    missing = data["cells"]["tuned"]["scores"]["contains"][data["items"]["sample_id"].index("q10")]
    assert missing is None  # no row: shown as missing, never as 0

    comparison = pd.read_parquet(base / "rep" / "comparison.parquet")
    assert [(r["metric"], r["diff"], r["p_holm"]) for r in data["comparison"]] == list(
        zip(comparison["metric"], comparison["diff"], comparison["p_holm"], strict=True))
    assert [r["verdict"] for r in data["comparison"]] == ["no significant difference", "better"]


def test_sharded_outputs_are_read_whole(tmp_path: Path, judged: tuple[Any, Path, dict[str, Any]]) -> None:
    suite, base, tables = judged
    sharded = tmp_path / "sharded"
    write_judged(sharded, tables, shards=3)
    assert (sharded / "rep" / "scores" / "base" / "2.parquet").is_file()
    whole = page_json(write_suite_report(suite, ParquetIOManager(base_path=str(base))))
    split = page_json(write_suite_report(suite, ParquetIOManager(base_path=str(sharded))))
    assert whole | {"written": None} == split | {"written": None}


def test_models_without_metrics_are_left_out(tmp_path: Path, judged: tuple[Any, Path, dict[str, Any]]) -> None:
    suite, base, _ = judged
    (base / "rep" / "metrics" / "tuned.parquet").unlink()
    tables = read_suite_tables(suite, ParquetIOManager(base_path=str(base)))
    assert [m.model for m in tables.models] == ["base"] and tables.comparison is None
    data = page_json(write_suite_report(suite, ParquetIOManager(base_path=str(base))))
    assert list(data["cells"]) == ["base"] and data["comparison"] == []
    empty = read_suite_tables(suite, ParquetIOManager(base_path=str(tmp_path / "nothing")))
    assert empty.models == [] and empty.samples.empty
    nothing = page_json(write_suite_report(suite, ParquetIOManager(base_path=str(tmp_path / "nothing"))))
    assert nothing["items"]["sample_id"] == [] and nothing["models"] == []  # an early call writes an empty page


def rollout_row(task: str, member: int, *, reward: float | None, error: str | None = None) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"Solve {task}"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "calculator",
                                                                     "arguments": '{"expression": "17+25"}'}]},
                {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "calculator"},
                {"role": "assistant", "content": f"The answer is 42 ({member})"}]
    return {"sample_id": task, "model": "smollm2", "sample_index": member, "rollout_id": f"{task}-{member}",
            "environment": "python:calc", "turns": "[]", "messages": json.dumps(messages), "num_turns": 2,
            "reward": reward, "success": None if reward is None else reward >= 1.0,
            "termination": "error" if error else "done", "error": error,
            "error_source": "agent" if error else None, "latency_s": 0.5}


def test_rollout_suite_conversations_and_rewards(tmp_path: Path) -> None:
    suite = load_suite(REPO / "evals" / "agent_quickstart.yaml")
    kind = TASK_KINDS.get(suite.task)
    samples = pd.DataFrame({"sample_id": ["calc-001", "calc-002"], "input": ["17 + 25?", "9 * 8?"],
                            "input_kind": "text", "reference": ["42", "72"],
                            "category": ["one_operation", "one_operation"], "metadata": "{}"})
    rollouts = pd.DataFrame([rollout_row("calc-001", 0, reward=1.0), rollout_row("calc-001", 1, reward=0.0),
                             rollout_row("calc-002", 0, reward=None, error="model timed out"),
                             rollout_row("calc-002", 1, reward=1.0)])
    scores = kind.score(suite, samples, rollouts)  # the kind's own scoring: reward and success rows
    metrics = kind.aggregate(suite, samples, rollouts, scores)
    base = tmp_path / "outputs"
    write_stage(base, suite.suite, "samples", samples)
    for stage, frame in (("rollouts", rollouts), ("scores", scores), ("metrics", metrics)):
        write_stage(base, suite.suite, stage, frame, "smollm2")
    data = page_json(write_suite_report(suite, ParquetIOManager(base_path=str(base))))

    keys = list(zip(data["items"]["sample_id"], data["items"]["sample_index"], strict=True))
    assert keys == [("calc-001", 0), ("calc-001", 1), ("calc-002", 0), ("calc-002", 1)]
    same_rows(cell_frame(data, "smollm2"), table_results(scores, None))
    cells = data["cells"]["smollm2"]
    assert cells["output"] == ["The answer is 42 (0)", "The answer is 42 (1)", "The answer is 42 (0)",
                               "The answer is 42 (1)"]
    assert cells["error"] == [None, None, "model timed out (agent)", None]
    conversation = cells["conversation"][0]
    assert [m["role"] for m in conversation] == ["user", "assistant", "tool", "assistant"]
    assert conversation[1]["tool_calls"] == [{"name": "calculator", "arguments": '{"expression": "17+25"}'}]
    assert conversation[2] == {"role": "tool", "content": "42", "name": "calculator", "tool_call_id": "c1"}
    # reward scores outside [0, 1] would pass at the highest score; these are 0/1: a pass is 1
    assert {m["metric"] for m in data["metrics"]} == set(metrics["metric"])


def test_traces_suite_sessions_as_conversations(tmp_path: Path) -> None:
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
    data = page_json(write_suite_report(suite, ParquetIOManager(base_path=str(base))))

    assert sorted(data["items"]["sample_id"]) == sorted(samples["sample_id"])  # one item per session
    stored = pd.read_parquet(base / suite.suite / "scores" / "travel_agent.parquet")
    page = cell_frame(data, "travel_agent")
    def results(ids: pd.Series, metrics: pd.Series, values: pd.Series) -> list[str]:
        return sorted(str((i, m, none_for_nan(v))) for i, m, v in zip(ids, metrics, values, strict=True))

    assert results(page["sample_id"], page["metric"], page["score"]) == results(
        stored["session_id"], stored["evaluator_id"], stored["score"])
    stored_spans = pd.read_parquet(base / suite.suite / "traces" / "travel_agent.parquet")
    cells = data["cells"]["travel_agent"]
    for i, session in enumerate(data["items"]["sample_id"]):
        own = stored_spans[stored_spans["session_id"] == session]
        conversation = cells["conversation"][i] or []
        calls = [c["name"] for m in conversation for c in m.get("tool_calls", [])]
        tools = own[own["kind"] == "tool"].sort_values("start_ns")["tool_name"].tolist()
        assert sorted(calls) == sorted(tools), session
        if len(own) and own["has_body"].fillna(False).all():
            assert [m for m in conversation if m["role"] == "user"], session


def test_report_command(eval_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval-pipeline report`: exit 2 naming the suite before anything is materialized, and for an unknown model;
    then it writes the page beside the tables and prints its path; --model and --output narrow and move it."""
    from eval_pipeline.cli import main

    suite = judged_suite(tmp_path / "suite")
    suite_file = str(tmp_path / "suite" / "rep.yaml")
    assert main(["report", suite_file]) == 2
    assert "nothing to report for suite 'rep'" in capsys.readouterr().err
    assert main(["report", suite_file, "--model", "nope"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err

    write_judged(eval_home / "outputs", judged_tables())
    assert main(["report", suite_file]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(eval_home / "outputs" / suite.suite / "report.html")
    assert list(page_json(path)["cells"]) == ["base", "tuned"]
    assert not (eval_home / "dagster").exists()  # no instance yet: none is created to read run ids from
    other = tmp_path / "elsewhere" / "tuned.html"
    assert main(["report", suite_file, "--model", "tuned", "--output", str(other)]) == 0
    assert capsys.readouterr().out.strip() == str(other)
    assert list(page_json(str(other))["cells"]) == ["tuned"]
