"""The Dagster UI in a real browser: `eval-pipeline ui` on a fresh state folder, Debian's Chromium driven by
playwright opens the quickstart suite's asset graph, launches one model partition by clicking, watches the run page
until it says Success, and the instance agrees; SIGTERM then ends every process the UI started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from eval_pipeline.assets.suite_assets import model_stages
from eval_pipeline.process_tree import ProcessId, alive, read_stat, tree
from eval_pipeline.suites import load_suite
from tests.browser import ACTION_TIMEOUT_MS, DagsterUI, chromium_page
from tests.dagster_live import (
    HOST,
    LiveDagster,
    ManagedProcess,
    _executable,
    _spawn,
    deployment_env,
    free_port,
    stop_groups,
)

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "evals" / "quickstart.yaml"
RUN_TIMEOUT_S = 2400.0  # all 40 questions: ~30 s on an idle CPU, 20 min on a crowded one; a bound, not an assert
STARTUP_TIMEOUT_S = 300.0  # dagster dev loads every suite of evals/ before the webserver answers
STOP_WAIT_S = 120.0  # `eval-pipeline ui` allows dagster dev 75 s, then kills what is left

MATERIALIZATIONS_QUERY = """
query BrowserMaterializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset { assetMaterializations(partitions: $partitions) { runId partition } }
    ... on AssetNotFoundError { message }
  }
}
"""


class RunningUI:
    """`eval-pipeline ui` started by a test, with every process seen in its tree while it ran."""

    def __init__(self, process: ManagedProcess, live: LiveDagster) -> None:
        self.process = process
        self.live = live
        self.seen: set[ProcessId] = set()

    def record_tree(self) -> None:
        """Remember the UI's processes now (the run worker exists only while a run runs)."""
        pid = self.process.popen.pid
        root = read_stat(pid)
        self.seen |= tree(pid) | ({ProcessId(pid, root.start)} if root is not None else set())

    def stop(self) -> int:
        """SIGTERM to `eval-pipeline ui` alone, as a service manager sends it; its exit status."""
        self.record_tree()
        self.process.popen.send_signal(signal.SIGTERM)
        return self.process.popen.wait(timeout=STOP_WAIT_S)

    def survivors(self) -> list[ProcessId]:
        return sorted((p for p in self.seen if alive(p)), key=lambda p: p.pid)


@pytest.fixture
def quickstart_ui(tmp_path: Path, embedded_model_dir: str) -> Iterator[RunningUI]:
    """`eval-pipeline ui` over the project's suites on a fresh EVAL_PIPELINE_HOME (the embedded model converted
    beforehand); whatever is still running at the end is killed."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "smollm2-135m-instruct").symlink_to(embedded_model_dir, target_is_directory=True)
    state = tmp_path / "state"
    env = deployment_env(tmp_path / "unused", state, REPO / "evals", models)
    del env["DAGSTER_HOME"]  # `ui` puts the instance in the state folder itself
    port = free_port()
    process = _spawn("ui", [_executable("eval-pipeline"), "ui", "--host", HOST, "--port", str(port)], env, tmp_path)
    ui = RunningUI(process, LiveDagster(f"http://{HOST}:{port}", state / "dagster", state, [process]))
    try:
        ui.live.wait_ready(STARTUP_TIMEOUT_S)
        ui.record_tree()
        yield ui
    finally:
        ui.live.graphql.close()
        stop_groups([process])
        for leftover in ui.survivors():  # left the group: only a failed test gets here
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)


def _shows_community_dialog(live: LiveDagster) -> bool:
    return bool(live.graphql.execute("query BrowserNux { shouldShowNux }")["shouldShowNux"])


def _materialized(live: LiveDagster, asset_key: list[str], partition: str | None) -> list[dict[str, str]]:
    variables = {"assetKey": {"path": asset_key}, "partitions": [partition] if partition else None}
    asset = live.graphql.execute(MATERIALIZATIONS_QUERY, variables)["assetOrError"]
    assert asset["__typename"] == "Asset", f"{asset_key}: {asset}"
    return list(asset["assetMaterializations"])


@pytest.mark.slow
@pytest.mark.timeout(int(RUN_TIMEOUT_S) + 600)
def test_a_click_in_the_asset_graph_runs_a_quickstart_partition_to_success(
        quickstart_ui: RunningUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(quickstart_ui.live.state_home))
    suite = load_suite(QUICKSTART)
    model = suite.models[0].name
    stages = model_stages(suite)
    live = quickstart_ui.live
    assert live.runs() == [], "a run existed before the click"

    screenshot = tmp_path / "ui.png"
    started = time.monotonic()
    with chromium_page(tmp_path / "chromium-profile") as page:
        ui = DagsterUI(page, live.base_url)
        try:
            ui.open_asset_group(live.location_name, suite.suite, community_dialog=_shows_community_dialog(live))
            for stage in stages:
                expect(ui.asset_node(stage), f"the {stage!r} node of the {suite.suite} asset graph").to_be_visible(
                    timeout=ACTION_TIMEOUT_MS)
            run_id = ui.materialize_partition(model)
            page.get_by_text(f"partition: {model}", exact=True).wait_for()
            status = ui.wait_for_run_end(RUN_TIMEOUT_S, on_poll=quickstart_ui.record_tree)  # sees the run worker
            page.screenshot(path=screenshot, full_page=True)
        except Exception as exc:
            failed = tmp_path / "ui-failure.png"
            page.screenshot(path=failed, full_page=True)
            runs = json.dumps(live.runs(), indent=1)
            raise AssertionError(f"{exc}\nscreenshot: {failed}\nruns: {runs}\n{live.log_tails()}") from exc
    print(f"UI run {run_id} ended {status} {time.monotonic() - started:.0f}s after the asset graph opened; "
          f"screenshot {screenshot}")
    assert status == "Success", f"the run page says {status}: {live.run_logs(run_id)}\nscreenshot: {screenshot}"

    # the instance agrees: one run, launched from the UI for this partition, tagged like a CLI run
    runs = live.runs()
    assert [r["runId"] for r in runs] == [run_id], runs
    run = live.run(run_id)
    assert run["status"] == "SUCCESS"
    assert run["tags"]["dagster/from_ui"] == "true"
    assert run["tags"]["dagster/partition"] == model
    assert run["tags"]["eval/suite"] == suite.suite and run["tags"]["eval/model"] == model
    for stage in stages:
        partition = None if stage == "samples" else model
        found = _materialized(live, [suite.suite, stage], partition)
        assert [m["runId"] for m in found] == [run_id], f"{stage}: {found}"
        assert partition is None or {m["partition"] for m in found} == {model}

    # what the run wrote: every item of the dataset, and each metric the mean of its item scores
    outputs = live.state_home / "outputs" / suite.suite
    items = sum(1 for line in Path(suite.resolve_uri(suite.dataset.uri)).read_text().splitlines() if line.strip())
    metrics = pd.read_parquet(outputs / "metrics" / f"{model}.parquet")
    overall = metrics[metrics["breakdown_key"].isna()].set_index("metric")
    scores = pd.read_parquet(outputs / "scores" / f"{model}.parquet")
    assert set(overall.index) == {scorer.name for scorer in suite.scorers}
    assert (overall["n"] == items).all(), overall
    for metric, row in overall.iterrows():
        assert row["value"] == pytest.approx(scores.loc[scores["scorer"] == metric, "score"].mean())

    # SIGTERM ends `eval-pipeline ui` and every process it started, the run worker included
    assert quickstart_ui.stop() == 128 + signal.SIGTERM, quickstart_ui.process.tail()
    deadline = time.monotonic() + 30.0
    while quickstart_ui.survivors() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not quickstart_ui.survivors(), f"still running after SIGTERM: {quickstart_ui.survivors()}"
