"""The suite report in a real browser: Debian's Chromium (playwright, ``executable_path``) opens the page from
file:// for the quickstart suite (the embedded model, a few items) and for a judged two-model suite (fake Bedrock
answers and a scripted judge); the counts the page shows equal those computed here from the Parquet tables with
pandas; a search and a filter narrow the item table to the right count; an item's detail shows its judge
explanation. Screenshots go to the test's tmp_path and to ``$EVAL_PIPELINE_SCREENSHOTS`` when set."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from eval_pipeline.cli import main
from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from tests.browser import chromium_page
from tests.fakes import FakeLLMServer
from tests.test_judge_pipeline import fake, router, write_suite  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
KEY = ["sample_id", "sample_index"]
LOWER_IS_BETTER = {"Harmfulness", "Stereotyping", "Refusal"}  # Bedrock's convention: 1.0 = harmful
QUICKSTART_ITEMS = 4  # the embedded model's load dominates; a few items show every part of the page
STRAY = re.compile(r"\b(?:null|undefined|NaN)\b|\[object \w+\]")
"""What a page that printed a missing value or an element as text would show."""
EXPLANATION = "I compared the response with the rubric."  # the scripted judge's (tests/fakes/judge.py)

pytestmark = pytest.mark.slow


def tid(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)


def save_screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    folder = os.environ.get("EVAL_PIPELINE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def model_tables(outputs: Path, suite: str, model: str) -> dict[str, pd.DataFrame]:
    folder = outputs / suite
    tables = {stage: pd.read_parquet(folder / stage / f"{model}.parquet")
              for stage in ("generations", "scores", "judgments") if (folder / stage / f"{model}.parquet").exists()}
    return tables


def item_status(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per item of one model: errored, and each metric's pass (1/0, NaN when missing or errored), by the page's
    stated rule (every metric here scores in [0, 1]: a pass is a score of 1, or of 0 where a higher score means
    more harm, stereotyping or refusal)."""
    results = [tables["scores"].rename(columns={"scorer": "metric"})]
    if "judgments" in tables:
        results.append(tables["judgments"])
    rows = pd.concat(results, ignore_index=True)
    best = rows["metric"].map(lambda metric: 0.0 if metric in LOWER_IS_BETTER else 1.0)
    rows = rows.assign(passed=(rows["score"] == best).astype(float).where(rows["score"].notna()))
    passed = rows.pivot_table(index=KEY, columns="metric", values="passed", aggfunc="min", dropna=False)
    errored = rows.groupby(KEY)["error"].apply(lambda e: e.notna().any())
    generations = tables["generations"].set_index(KEY)
    frame = passed.reindex(generations.index)
    frame["errored"] = generations["error"].notna() | errored.reindex(generations.index, fill_value=False)
    frame["failed"] = generations["error"].notna() | (frame[passed.columns] != 1.0).any(axis=1)
    return frame


def open_report(page: Page, path: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(Path(path).resolve().as_uri())
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    assert not errors, errors
    stray = STRAY.search(page.locator("#app").inner_text())
    assert stray is None, stray


def shown(page: Page) -> int:
    return int(page.get_by_test_id("count-shown").inner_text())


def test_quickstart_report(eval_home: Path, embedded_model_dir: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "smollm2-135m-instruct").symlink_to(embedded_model_dir, target_is_directory=True)
    monkeypatch.setenv("EVAL_PIPELINE_MODEL_CACHE", str(models))
    quickstart = REPO / "evals" / "quickstart.yaml"
    result = run_suite(load_suite(quickstart), local_instance(), limit=QUICKSTART_ITEMS)
    [run] = result.models
    assert run.success, run.error
    capsys.readouterr()
    assert main(["report", str(quickstart)]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(eval_home / "outputs" / "quickstart" / "report.html") or path.endswith("quickstart/report.html")

    outputs = Path(path).parent.parent
    tables = model_tables(outputs, "quickstart", "smollm2-135m")
    status = item_status(tables)
    with chromium_page(tmp_path / "profile") as page:
        open_report(page, path)
        save_screenshot(page, tmp_path, "report_quickstart")
        assert page.get_by_test_id("suite").inner_text() == "quickstart"
        assert int(page.get_by_test_id("count-items").inner_text()) == len(tables["generations"]) == QUICKSTART_ITEMS
        assert int(page.get_by_test_id("count-failed-smollm2-135m").inner_text()) == int(status["failed"].sum())
        assert int(page.get_by_test_id("count-errors-smollm2-135m").inner_text()) == int(status["errored"].sum())
        runs = page.get_by_test_id("runs").inner_text()
        assert run.dagster_run_id in runs and run.mlflow_run_id and run.mlflow_run_id in runs
        metrics = pd.read_parquet(outputs / "quickstart" / "metrics" / "smollm2-135m.parquet")
        overall = metrics[metrics["breakdown_key"].isna()]
        for row in overall.itertuples(index=False):
            cells = page.locator(f"[data-testid=metrics] tr[data-metric='{row.metric}'] td")
            assert cells.nth(2).inner_text() == f"{row.value:.3f}"
            assert cells.nth(6).inner_text() == str(row.n)
        assert page.get_by_test_id("plot").count() == overall["metric"].nunique()  # one per metric by category

        page.get_by_test_id("view-failed").click()
        assert shown(page) == int(status["failed"].sum())
        page.get_by_test_id("view-all").click()
        page.get_by_test_id("filter-metric").select_option("exact_match")
        page.get_by_test_id("filter-outcome").select_option("pass")
        assert shown(page) == int((status["exact_match"] == 1.0).sum())


def test_judged_two_model_report(eval_home: Path, fake: FakeLLMServer, tmp_path: Path,  # noqa: F811
                                 capsys: pytest.CaptureFixture[str]) -> None:
    suite_path = write_suite(eval_home.parent / "p")
    result = run_suite(load_suite(suite_path), local_instance())
    assert result.success, [m.error for m in result.models]
    capsys.readouterr()
    assert main(["report", str(suite_path)]) == 0
    path = capsys.readouterr().out.strip()
    outputs = Path(path).parent.parent
    status = {model: item_status(model_tables(outputs, "judged", model)) for model in ("base", "tuned")}
    generations = {model: model_tables(outputs, "judged", model)["generations"] for model in ("base", "tuned")}
    shared = [m for m in status["base"].columns if m in status["tuned"].columns and m not in ("errored", "failed")]
    both = status["base"][shared].join(status["tuned"][shared], lsuffix="_b", rsuffix="_t", how="inner")
    disagree = pd.Series(False, index=both.index)
    for metric in shared:
        a, b = both[f"{metric}_b"], both[f"{metric}_t"]
        disagree |= a.notna() & b.notna() & (a != b)
    comparison = pd.read_parquet(outputs / "judged" / "comparison.parquet")

    with chromium_page(tmp_path / "profile") as page:
        open_report(page, path)
        save_screenshot(page, tmp_path, "report_judged")
        items = pd.concat([g[KEY] for g in generations.values()]).drop_duplicates()
        assert int(page.get_by_test_id("count-items").inner_text()) == len(items) == 12
        for model in ("base", "tuned"):
            assert int(page.get_by_test_id(f"count-failed-{model}").inner_text()) == int(status[model]["failed"].sum())
            assert int(page.get_by_test_id(f"count-errors-{model}").inner_text()) == int(
                status[model]["errored"].sum())
        assert int(page.get_by_test_id("count-disagree-base--tuned").inner_text()) == int(disagree.sum()) == 3
        assert page.locator("[data-testid=comparison] tbody tr").count() == len(comparison)
        assert "Harmfulness" in page.get_by_test_id("judge-warnings").inner_text()  # always "No": one verdict
        assert status["base"]["Harmfulness"].eq(1.0).all()  # "No" harm passes
        assert page.locator("[data-testid=gates]").inner_text().count("pass") == 2

        page.get_by_test_id("view-disagree").click()
        assert shown(page) == 3
        save_screenshot(page, tmp_path, "report_judged_disagreements")
        page.get_by_test_id("view-all").click()
        page.get_by_test_id("search").fill("not sure")
        unsure = {tuple(k) for g in generations.values()
                  for k in g[g["output"].str.contains("not sure", case=False, na=False)][KEY].values}
        expect(page.get_by_test_id("count-shown")).to_have_text(str(len(unsure)))
        page.get_by_test_id("search").fill("")
        page.get_by_test_id("filter-model").select_option("tuned")
        page.get_by_test_id("filter-metric").select_option("Correctness")
        page.get_by_test_id("filter-outcome").select_option("fail")
        expect(page.get_by_test_id("count-shown")).to_have_text(str(int((status["tuned"]["Correctness"] == 0).sum())))
        assert page.get_by_test_id("item-row").count() == 3

        page.get_by_test_id("view-judge").click()
        lines = page.get_by_test_id("judge-line")
        expect(lines.first).to_be_visible()
        assert STRAY.search(page.locator("#app").inner_text()) is None  # the judge lines are text, not objects
        assert EXPLANATION in lines.first.inner_text()
        page.get_by_test_id("item-row").first.click()
        detail = page.get_by_test_id("detail")
        expect(detail).to_be_visible()
        assert EXPLANATION in detail.get_by_test_id("explanation").first.inner_text()
        save_screenshot(page, tmp_path, "report_judged_detail")


def test_rollout_conversation_in_the_detail(tmp_path: Path) -> None:
    """An agent's rollout opens as a conversation: the user's task, the tool call with its arguments, the tool's
    result and the final reply."""
    from eval_pipeline.report import write_suite_report
    from eval_pipeline.resources.parquet_io import ParquetIOManager
    from eval_pipeline.suites.task_kinds import TASK_KINDS
    from tests.report_suites import write_stage
    from tests.test_report import rollout_row

    suite = load_suite(REPO / "evals" / "agent_quickstart.yaml")
    kind = TASK_KINDS.get(suite.task)
    samples = pd.DataFrame({"sample_id": ["calc-001"], "input": ["What is 17 + 25?"], "input_kind": "text",
                            "reference": ["42"], "category": ["one_operation"], "metadata": "{}"})
    rollouts = pd.DataFrame([rollout_row("calc-001", 0, reward=1.0), rollout_row("calc-001", 1, reward=0.0)])
    scores = kind.score(suite, samples, rollouts)
    base = tmp_path / "outputs"
    write_stage(base, suite.suite, "samples", samples)
    for stage, frame in (("rollouts", rollouts), ("scores", scores),
                         ("metrics", kind.aggregate(suite, samples, rollouts, scores))):
        write_stage(base, suite.suite, stage, frame, "smollm2")
    path = write_suite_report(suite, ParquetIOManager(base_path=str(base)))
    with chromium_page(tmp_path / "profile") as page:
        open_report(page, path)
        assert int(page.get_by_test_id("count-failed-smollm2").inner_text()) == 1  # member 1: reward 0
        page.get_by_test_id("item-row").first.click()
        conversation = page.get_by_test_id("detail").get_by_test_id("conversation")
        expect(conversation).to_be_visible()
        call = conversation.get_by_test_id("tool-call")
        assert "calculator" in call.inner_text() and '{"expression": "17+25"}' in call.inner_text()
        text = conversation.inner_text()
        assert text.index("Solve calc-001") < text.index("calculator") < text.index("42") < text.index(
            "The answer is 42 (0)")
        save_screenshot(page, tmp_path, "report_rollout_detail")
