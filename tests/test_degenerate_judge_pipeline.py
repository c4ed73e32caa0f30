"""A degenerate judge is flagged end to end (issue 9, item 7): a fake judge that answers the same level about every
answer gets a ``judge.degenerate.Correctness`` warning in the CLI output of ``eval-pipeline run`` (and its
``--json``), in the Dagster metadata of the judgments and metrics materializations, as an MLflow tag on the model's
run, and in the SDK's ``show_results``; a judge that varies and agrees with the ``contains`` scorer gets none.
The run still succeeds: it is a warning, not a failure."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from eval_pipeline import cli
from eval_pipeline.instance import local_instance
from eval_pipeline.sdk import LLMAsJudgeEvaluator
from eval_pipeline.tracking import default_tracking_uri
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

MODEL, JUDGE = "amazon.nova-micro-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
N, RIGHT = 12, 8
FLAG = "judge.degenerate.Correctness"
JUDGES: dict[str, Callable[[dict[str, str], str], str]] = {
    "constant": lambda fields, prompt: "Correct",
    "agreeing": lambda fields, prompt: "Correct" if fields["ground_truth"] in fields["prediction"] else "Incorrect",
}


def respond(prompt: str) -> str:
    i = int(prompt.split()[2])
    return f"{2 * i}!" if i < RIGHT else "I am not sure."


@pytest.fixture(params=sorted(JUDGES))
def judge(request: pytest.FixtureRequest, aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    router = ModelRouter({MODEL: respond, JUDGE: scripted_judge(JUDGES[request.param])})
    with FakeLLMServer(answer=router, known_models=set(router.responders)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        monkeypatch.delenv("EVAL_PIPELINE_DAGSTER_URL", raising=False)
        yield request.param


def write_suite(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "qa.jsonl"
    rows = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "referenceResponse": str(2 * i)} for i in range(N)]
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    suite = folder / "degen.yaml"
    suite.write_text(f"""suite: degen
dataset: {{uri: qa.jsonl}}
models:
  - {{name: m, backend: bedrock, model: {MODEL}}}
generation: {{max_tokens: 16}}
scorers: [contains]
judge:
  model: {{backend: bedrock, model: {JUDGE}}}
  builtin_metrics: [Correctness]
""")
    return suite, dataset


def materialization_metadata(stage: str) -> dict[str, object]:
    records = local_instance().fetch_materializations(dg.AssetKey(["degen", stage]), limit=1).records
    assert records, stage
    metadata = records[0].asset_materialization.metadata
    return {key: getattr(value, "value", getattr(value, "text", value)) for key, value in metadata.items()}


@pytest.mark.slow
def test_degenerate_judge_flag_everywhere(eval_home: Path, judge: str, capsys: pytest.CaptureFixture[str]) -> None:
    flagged = judge == "constant"
    suite, dataset = write_suite(eval_home.parent / "p")

    # 1. the CLI: a warning line under the metrics; exit 0 (a warning, not a failure)
    assert cli.main(["run", str(suite)]) == 0
    out = capsys.readouterr().out
    contains = [line for line in out.splitlines() if line.startswith("contains")]
    assert contains and f"{RIGHT / N:.3f}" in contains[0]
    warnings = [line for line in out.splitlines() if line.startswith("judge warning:")]
    if flagged:
        assert warnings == [f"judge warning: m / Correctness: the same verdict 'Correct' on {N} of {N} items (100% "
                            f"≥ 95%); agreement with contains (AUC 0.500, n={N}) no better than chance: the judge's "
                            "scores do not rank the items the scorer passes above those it fails (AUC ≤ 0.5, i.e. "
                            "Cohen's κ ≤ 0 for a two-level judge)"]
        assert out.index("judge warning:") > out.index("contains")
    else:
        assert warnings == []
    assert cli.main(["run", str(suite), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["success"] is True
    assert set(result["judge_warnings"]["m"]) == ({"Correctness"} if flagged else set())

    # 2. Dagster: the metrics materialization (both rules) and the judgments one (the same-verdict rule)
    metrics = materialization_metadata("metrics")
    judgments = materialization_metadata("judgments")
    if flagged:
        reason = metrics[FLAG]
        assert "same verdict 'Correct'" in reason and "AUC 0.500" in reason and reason in warnings[0]
        assert "same verdict 'Correct'" in judgments[FLAG] and "AUC" not in judgments[FLAG]
        assert "Correctness" in metrics["judge_warnings"]
    else:
        assert FLAG not in metrics and FLAG not in judgments and metrics["judge_warnings"] == "none"

    # 3. MLflow: a tag on the model's run
    client = MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("eval/degen").experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    tags = runs[0].data.tags
    assert (tags.get(FLAG) == metrics.get(FLAG)) if flagged else (FLAG not in tags)

    # 4. the SDK's show_results (its suites have no scorer: the same-verdict rule)
    execution = LLMAsJudgeEvaluator(model=MODEL, evaluator_model=JUDGE, dataset=str(dataset),
                                    builtin_metrics=["Correctness"], evaluate_base_model=False,
                                    name=f"degen_{judge}").evaluate()
    assert execution.wait(poll=0.2, timeout=180).overall_status == "Succeeded"
    capsys.readouterr()
    execution.show_results(use_rich=False)
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("judge warning:")]
    assert len(shown) == (1 if flagged else 0)
    if flagged:
        assert "/ Correctness: the same verdict 'Correct' on 12 of 12 items" in shown[0]
    assert len(execution.results().judge_warnings) == len(shown)
