"""What the Dagster asset pages explain (issue 13, item 5), read back from the instance's materialization events
and checked against the Parquet tables: the generations preview shows each output beside its prompt and reference,
the metrics summary shows stderr and the interval method, latency and cost are rounded to sensible digits, and the
gate verdicts (error rate and release gate) and degenerate-judge warnings are on the metrics materialization.

One run of a judged two-model suite (a precomputed baseline, a model answered by a fake Bedrock, a constant fake
judge) serves every check."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from eval_pipeline.assets.metadata import markdown_table, prompt_preview, rounded_usage, significant
from eval_pipeline.execution import SuiteRun, run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

SUITE = "pages"
N, BASE_RIGHT, TUNED_RIGHT = 12, 6, 9
TUNED, JUDGE = "amazon.nova-lite-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
LONG = "Think step by step.\nShow | your   work, then answer. " * 4
"""A prompt prefix longer than a preview cell, with a newline, a pipe and runs of spaces."""


def question(i: int) -> str:
    return (LONG if i == 0 else "") + f"What is {i} plus {i}?"


def number(prompt: str) -> int:
    return int(prompt.rsplit("What is ", 1)[1].split()[0])


def write_project(folder: Path) -> Path:
    data = folder / "data"
    data.mkdir(parents=True)
    (data / "qa.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": question(i), "referenceResponse": str(2 * i),
                    "category": "even" if i % 2 == 0 else "odd"}) + "\n" for i in range(N)))
    (data / "base.jsonl").write_text("".join(
        json.dumps({"sample_id": f"q{i}", "response": f"{2 * i}" if i < BASE_RIGHT else "no idea"}) + "\n"
        for i in range(N)))
    suite = folder / "evals" / f"{SUITE}.yaml"
    suite.parent.mkdir()
    suite.write_text(f"""\
suite: {SUITE}
dataset: {{uri: data/qa.jsonl}}
models:
  - {{name: base, backend: precomputed, responses: data/base.jsonl}}
  - {{name: tuned, backend: bedrock, model: {TUNED}, price: {{input_per_1m: 0.1, output_per_1m: 0.3}}}}
baseline: base
generation: {{max_tokens: 16}}
scorers: [contains]
breakdown_keys: [category]
judge:
  model: {{backend: bedrock, model: {JUDGE}, price: {{input_per_1m: 0.1, output_per_1m: 0.7}}}}
  builtin_metrics: [Correctness]
gates:
  baseline: base
  alpha: 0.05
  metrics:
    contains: {{max_regression: 0.5}}
""")
    return suite


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[SuiteRun]:
    """The suite run once, in a state folder of its own (module scope: the env is set by hand, not by fixtures)."""
    root = tmp_path_factory.mktemp("pages")
    router = ModelRouter({
        TUNED: lambda prompt: f"{2 * number(prompt)}!" if number(prompt) < TUNED_RIGHT else "I am not sure.",
        JUDGE: scripted_judge(lambda fields, prompt: "Correct")})  # one verdict for everything: degenerate
    with pytest.MonkeyPatch.context() as env, FakeLLMServer(answer=router, known_models=set(router.responders)) as fake:
        env.setenv("EVAL_PIPELINE_HOME", str(root / "home"))
        for name in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "EVAL_PIPELINE_DAGSTER_URL", "AWS_PROFILE",
                     "AWS_BEARER_TOKEN_BEDROCK", "EVAL_PIPELINE_OUTPUTS"):
            env.delenv(name, raising=False)
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": moto_endpoint,
                            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.url}.items():
            env.setenv(name, value)
        result = run_suite(load_suite(write_project(root / "project")), local_instance())
        assert result.success, [m.error for m in result.models]
        yield result


def metadata(stage: str, partition: str | None = None) -> dict[str, Any]:
    """The latest materialization's metadata of a stage (a model's partition), values unwrapped."""
    records = local_instance().fetch_materializations(dg.AssetKey([SUITE, stage]), limit=20).records
    found = [r.asset_materialization for r in records if r.asset_materialization.partition == partition]
    assert found, (stage, partition)
    return {key: getattr(value, "value", value) for key, value in found[0].metadata.items()}


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of a markdown table's body rows (an escaped pipe read back as ``|``)."""
    return [[cell.strip().replace("\0", "|") for cell in line.replace("\\|", "\0").strip()[2:-2].split(" | ")]
            for line in markdown.splitlines()[2:]]


def header(markdown: str) -> list[str]:
    return [cell.strip() for cell in markdown.splitlines()[0].strip()[2:-2].split(" | ")]


def shown(text: object, width: int = 80) -> str:
    """A cell as the preview shows it: one line (whitespace runs collapsed), cut to ``width`` with an ellipsis."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


@pytest.mark.slow  # one judged run of three Dagster runs, shared by the module
def test_generations_preview_shows_prompt_and_reference_beside_the_output(run: SuiteRun) -> None:
    tuned = next(m for m in run.models if m.model == "tuned")
    generations = pd.read_parquet(tuned.outputs["generations"])
    samples = pd.read_parquet(tuned.outputs["samples"]).set_index("sample_id")
    preview = metadata("generations", "tuned")["preview"]
    columns = header(preview)
    assert columns[:5] == ["sample_id", "sample_index", "input", "reference", "output"]
    rows = table_rows(preview)
    assert len(rows) == min(10, len(generations))
    for cells, generation in zip(rows, generations.itertuples(index=False), strict=False):
        cell = dict(zip(columns, cells, strict=True))
        assert cell["sample_id"] == generation.sample_id
        assert cell["input"] == shown(samples.loc[generation.sample_id, "input"])
        assert cell["reference"] == shown(samples.loc[generation.sample_id, "reference"])
        assert cell["output"] == shown(generation.output)
    first = dict(zip(columns, rows[0], strict=True))
    assert first["input"].endswith("…") and len(first["input"]) == 80 and "\n" not in first["input"]
    assert first["input"].startswith("Think step by step. Show | your work")  # one line, the pipe escaped


@pytest.mark.slow  # one judged run of three Dagster runs, shared by the module
def test_metrics_summary_shows_stderr_and_the_interval_method(run: SuiteRun) -> None:
    tuned = next(m for m in run.models if m.model == "tuned")
    table = pd.read_parquet(tuned.outputs["metrics"])
    summary = metadata("metrics", "tuned")["summary"]
    assert header(summary) == ["metric", "value", "stderr", "95% CI", "CI method", "n", "errors"]
    rows = table_rows(summary)
    assert len(rows) == len(table)
    for cells, row in zip(rows, table.itertuples(index=False), strict=True):
        label = (row.metric if pd.isna(row.breakdown_key)
                 else f"{row.metric} [{row.breakdown_key}={row.breakdown_value}]")
        assert cells == [label, f"{row.value:.3f}", f"{row.stderr:.3f}", f"[{row.ci_low:.3f}, {row.ci_high:.3f}]",
                         row.ci_method, str(row.n), str(row.errors)]
    contains = table[(table["metric"] == "contains") & table["breakdown_key"].isna()].iloc[0]
    assert contains["value"] == pytest.approx(TUNED_RIGHT / N) and contains["ci_method"]  # the numbers by hand


@pytest.mark.slow  # one judged run of three Dagster runs, shared by the module
def test_latency_and_cost_are_rounded_to_sensible_digits(run: SuiteRun) -> None:
    tuned = next(m for m in run.models if m.model == "tuned")
    generations = pd.read_parquet(tuned.outputs["generations"])
    judgments = pd.read_parquet(tuned.outputs["judgments"])
    produced, judged = metadata("generations", "tuned"), metadata("judgments", "tuned")
    # independent: the exact sums and median from the tables, rounded by Python's own formatting
    exact_cost = float(((generations["tokens_in"] * 0.1 + generations["tokens_out"] * 0.3) / 1e6).sum())
    assert exact_cost > 0 and produced["cost_usd"] == float(f"{exact_cost:.6g}")
    assert produced["latency_p50_s"] == float(f"{generations['latency_s'].median():.3g}")
    judge_cost = float(judgments["cost_usd"].sum())
    assert judge_cost > 0 and judged["cost_usd"] == float(f"{judge_cost:.6g}")
    for value in (produced["cost_usd"], produced["latency_p50_s"], judged["cost_usd"]):
        assert float(f"{value:.6g}") == value  # at most 6 significant digits: no float noise


@pytest.mark.slow  # one judged run of three Dagster runs, shared by the module
def test_gate_verdicts_and_judge_warnings_are_on_the_metrics_materialization(run: SuiteRun) -> None:
    for model in run.models:
        entries = metadata("metrics", model.model)
        assert header(entries["gates"]) == ["gate", "model", "verdict", "observed", "allowed", "reason"]
        rows = {cells[0]: cells for cells in table_rows(entries["gates"])}
        # the asset checks' own results (read from the run's check evaluations) say the same
        checks = {gate.check: gate for gate in model.gates}
        assert set(rows) == set(checks) == {"error_rate", "release_gate"}
        for name, gate in checks.items():
            assert rows[name][1:5] == [model.model, "passed" if gate.passed else "FAILED",
                                       "" if gate.observed is None else f"{gate.observed:.4g}", f"{gate.allowed:.4g}"]
            assert rows[name][5]  # a reason or the passed gate's summary: never an empty verdict
        scores = pd.read_parquet(model.outputs["scores"])
        judgments = pd.read_parquet(model.outputs["judgments"])
        errors = int(scores["error"].notna().sum() + judgments["error"].notna().sum())
        assert checks["error_rate"].observed == errors / (len(scores) + len(judgments)) == 0.0
        assert checks["release_gate"].passed
        assert "Correctness" in entries["judge_warnings"] and "same verdict 'Correct'" in entries["judge_warnings"]


def test_formatting_helpers() -> None:
    assert significant(0.1 + 0.2, 6) == 0.3 and significant(0.0012345678, 3) == 0.00123
    assert significant(0.0, 3) == 0.0 and math.isnan(significant(float("nan"), 3))
    assert rounded_usage({"cost_usd": 0.30000000000000004, "latency_p95_s": 12.3456, "requests": 3,
                          "tokens_in": 1.23456789}) == {"cost_usd": 0.3, "latency_p95_s": 12.3, "requests": 3,
                                                        "tokens_in": 1.23456789}
    messages = json.dumps([{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                           {"role": "assistant", "content": "ok"}, {"role": "user", "content": "last one"}])
    assert prompt_preview(messages, "messages") == "last one"
    assert prompt_preview("plain", "text") == "plain"
    table = markdown_table(pd.DataFrame({"a": ["x" * 100], "b": ["1 |\n 2"]}), cell_chars=10)
    assert table.splitlines()[2] == "| xxxxxxxxx… | 1 \\| 2 |"
