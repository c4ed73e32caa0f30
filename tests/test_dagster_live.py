"""End to end through a real ``dagster-webserver`` + ``dagster-daemon``: GraphQL runs, the checkpoint sensor, backfills.

One deployment serves the module (starting it costs ~25 s on 2 cores): its suites folder holds a copy of the
quickstart suite, a ``watched`` suite whose checkpoint folder the sensor watches, and a ``pair`` suite of two
precomputed models for the backfill. Every check reads what the runs wrote: the Parquet tables under
``EVAL_PIPELINE_HOME/outputs``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.dagster_live import REPO_ROOT, LiveDagster, live_dagster

pytestmark = pytest.mark.slow

QUICKSTART_MODEL = "smollm2-135m"
QUICKSTART_METRICS = {"contains", "exact_match", "f1", "rouge_l"}
CHECKPOINT = "ckpt-1"
RUN_TIMEOUT_S = 240.0
SENSOR_TIMEOUT_S = 90.0  # the checkpoint sensor ticks every 30 s
BACKFILL_TIMEOUT_S = 90.0  # the backfill daemon iterates every 30 s

QA_ITEMS = [
    {"id": "q1", "prompt": "What is the capital of France?", "referenceResponse": "Paris", "category": "geography"},
    {"id": "q2", "prompt": "What is 2 + 2?", "referenceResponse": "4", "category": "math"},
    {"id": "q3", "prompt": "What is the capital of Japan?", "referenceResponse": "Tokyo", "category": "geography"},
    {"id": "q4", "prompt": "What is 3 * 3?", "referenceResponse": "9", "category": "math"},
]
# The backfill's two models: one always right, one right on math only.
RESPONSES = {
    "oracle": {"q1": "Paris", "q2": "4", "q3": "Tokyo", "q4": "9"},
    "mathonly": {"q1": "Lyon", "q2": "4", "q3": "Kyoto", "q4": "9"},
}
EXPECTED_EXACT_MATCH = {  # model -> (overall, geography, math)
    "oracle": (1.0, 1.0, 1.0),
    "mathonly": (0.5, 0.0, 1.0),
}


@dataclass
class Deployment:
    """The running deployment and the folders the tests act on."""

    live: LiveDagster
    checkpoints: Path
    staging: Path

    def outputs(self, suite: str, stage: str, partition: str) -> Path:
        return self.live.state_home / "outputs" / suite / stage / f"{partition}.parquet"


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _write_suites(root: Path, tiny_model_dir: str) -> tuple[Path, Path]:
    """The module's suites folder and the watched checkpoint folder."""
    suites, data, checkpoints = root / "suites", root / "data", root / "checkpoints"
    for folder in (suites, data, checkpoints):
        folder.mkdir(parents=True)
    quickstart = yaml.safe_load((REPO_ROOT / "evals" / "quickstart.yaml").read_text(encoding="utf-8"))
    quickstart["dataset"]["uri"] = str(REPO_ROOT / quickstart["dataset"]["uri"])  # the copy is not under evals/
    (suites / "quickstart.yaml").write_text(yaml.safe_dump(quickstart, sort_keys=False), encoding="utf-8")

    qa = _write_jsonl(data / "qa.jsonl", QA_ITEMS)
    watched = {
        "suite": "watched",
        "dataset": {"uri": str(qa)},
        "models": [{"name": "tiny-base", "backend": "local", "model": tiny_model_dir}],
        "generation": {"max_tokens": 4},
        "scorers": ["exact_match"],
        "watch": {"dir": str(checkpoints)},
        "schedule": None,
    }
    pair = {
        "suite": "pair",
        "dataset": {"uri": str(qa)},
        "models": [
            {"name": name, "backend": "precomputed",
             "responses": str(_write_jsonl(data / f"responses-{name}.jsonl",
                                           [{"sample_id": k, "response": v} for k, v in answers.items()]))}
            for name, answers in RESPONSES.items()],
        "scorers": ["exact_match", "contains"],
        "breakdown_keys": ["category"],
        "schedule": None,
    }
    for spec in (watched, pair):
        (suites / f"{spec['suite']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return suites, checkpoints


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               embedded_model_dir: str, tiny_model_dir: str) -> Iterator[Deployment]:
    """Webserver + daemon over the module's suites; the embedded model is converted before they start."""
    root = tmp_path_factory.mktemp("live")
    suites, checkpoints = _write_suites(root, tiny_model_dir)
    model_cache = root / "models"
    model_cache.mkdir()
    (model_cache / "smollm2-135m-instruct").symlink_to(embedded_model_dir, target_is_directory=True)
    staging = root / "staging"
    staging.mkdir()
    failed_before = request.session.testsfailed
    with live_dagster(root / "deployment", suites, model_cache=model_cache) as live:
        yield Deployment(live, checkpoints, staging)
        if request.session.testsfailed > failed_before:
            _print_uncaptured(request, f"live Dagster process logs (tests failed):\n{live.log_tails(200)}")


def _print_uncaptured(request: pytest.FixtureRequest, text: str) -> None:
    """Straight to the terminal: a module fixture's teardown output is otherwise not shown."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(text, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        print(text, file=sys.stderr)


def _overall(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[metrics["breakdown_key"].isna()].set_index("metric")


def test_quickstart_run_through_graphql(deployment: Deployment) -> None:
    """Register the partition, launch ``quickstart_eval`` for it with a sample limit, poll it to SUCCESS."""
    live = deployment.live
    live.add_dynamic_partition("quickstart_models", QUICKSTART_MODEL)  # a duplicate if the sensor was first
    assert QUICKSTART_MODEL in live.partition_keys("quickstart_eval")

    started = time.monotonic()
    run_id = live.launch_run("quickstart_eval", partition=QUICKSTART_MODEL,
                             run_config={"ops": {"quickstart__samples": {"config": {"limit": 3}}}})
    run = live.wait_for_run(run_id, RUN_TIMEOUT_S)
    print(f"quickstart run {run_id} succeeded {time.monotonic() - started:.0f}s after launch")
    assert run["tags"]["dagster/partition"] == QUICKSTART_MODEL

    path = deployment.outputs("quickstart", "metrics", QUICKSTART_MODEL)
    assert path.is_file(), f"no metrics table at {path}"
    metrics = pd.read_parquet(path)
    assert set(metrics["suite"]) == {"quickstart"} and set(metrics["model"]) == {QUICKSTART_MODEL}
    overall = _overall(metrics)
    assert set(overall.index) == QUICKSTART_METRICS
    assert (overall["n"] == 3).all() and (overall["errors"] == 0).all()
    assert overall["value"].between(0.0, 1.0).all()
    by_category = metrics[metrics["breakdown_key"] == "category"]
    assert set(by_category["metric"]) == QUICKSTART_METRICS
    assert by_category.groupby("metric")["n"].sum().eq(3).all()

    generations = pd.read_parquet(deployment.outputs("quickstart", "generations", QUICKSTART_MODEL))
    assert len(generations) == 3 and generations["error"].isna().all()
    assert generations["output"].str.strip().str.len().gt(0).all()
    scores = pd.read_parquet(deployment.outputs("quickstart", "scores", QUICKSTART_MODEL))
    for metric in QUICKSTART_METRICS:  # each metric is the mean of its item scores
        assert overall.loc[metric, "value"] == pytest.approx(scores.loc[scores["scorer"] == metric, "score"].mean())


def test_new_checkpoint_sensor_registers_and_evaluates(deployment: Deployment, tiny_model_dir: str) -> None:
    """A model folder dropped into the watched folder becomes a partition and gets one successful run."""
    live = deployment.live
    assert CHECKPOINT not in live.partition_keys("watched_eval")
    staged = deployment.staging / CHECKPOINT
    shutil.copytree(tiny_model_dir, staged)
    os.rename(staged, deployment.checkpoints / CHECKPOINT)  # appears whole, never half-copied
    dropped_at = time.monotonic()

    def ticks() -> str:
        return f"sensor ticks: {json.dumps(live.sensor_ticks('watched_new_checkpoints'), indent=1)}"

    live.wait_until(lambda: CHECKPOINT in live.partition_keys("watched_eval"), SENSOR_TIMEOUT_S,
                    f"the sensor to add partition {CHECKPOINT} to watched_models", diagnostics=ticks)
    runs = live.wait_until(lambda: live.runs(job="watched_eval", tags={"dagster/partition": CHECKPOINT}),
                           SENSOR_TIMEOUT_S, f"a run for partition {CHECKPOINT}", diagnostics=ticks)
    run = live.wait_for_run(runs[0]["runId"], RUN_TIMEOUT_S)
    print(f"checkpoint evaluated {time.monotonic() - dropped_at:.0f}s after it appeared")

    assert len(live.runs(job="watched_eval", tags={"dagster/partition": CHECKPOINT})) == 1
    assert run["tags"]["eval/trigger"] == "new_checkpoint"
    assert run["tags"]["dagster/sensor_name"] == "watched_new_checkpoints"
    generations = pd.read_parquet(deployment.outputs("watched", "generations", CHECKPOINT))
    assert len(generations) == len(QA_ITEMS) and generations["error"].isna().all()
    assert set(generations["model"]) == {CHECKPOINT}
    metrics = pd.read_parquet(deployment.outputs("watched", "metrics", CHECKPOINT))
    assert _overall(metrics).loc["exact_match", "n"] == len(QA_ITEMS)


def test_backfill_over_two_models(deployment: Deployment) -> None:
    """A partition backfill of ``pair_eval`` over both models; the daemon runs each, the tables differ as scripted."""
    live = deployment.live
    models = sorted(RESPONSES)
    for model in models:
        live.add_dynamic_partition("pair_models", model)
    assert set(models) <= set(live.partition_keys("pair_eval"))

    started = time.monotonic()
    backfill_id = live.launch_backfill("pair_eval", models)
    assert sorted(live.backfill(backfill_id)["partitionNames"]) == models

    def backfill_runs() -> list[dict[str, object]] | None:
        runs = live.runs(job="pair_eval", tags={"dagster/backfill": backfill_id})
        return runs if len(runs) == len(models) else None

    runs = live.wait_until(backfill_runs, BACKFILL_TIMEOUT_S, f"backfill {backfill_id} to launch {len(models)} runs",
                           diagnostics=lambda: f"backfill: {live.backfill(backfill_id)}")
    launched_s = time.monotonic() - started
    finished = [live.wait_for_run(str(run["runId"]), RUN_TIMEOUT_S) for run in runs]
    print(f"backfill {backfill_id}: runs launched after {launched_s:.0f}s, "
          f"finished after {time.monotonic() - started:.0f}s")
    assert sorted(run["tags"]["dagster/partition"] for run in finished) == models

    for model, (overall, geography, math) in EXPECTED_EXACT_MATCH.items():
        metrics = pd.read_parquet(deployment.outputs("pair", "metrics", model))
        exact = metrics[metrics["metric"] == "exact_match"]
        values = {(None if pd.isna(k) else v): value
                  for k, v, value in zip(exact["breakdown_key"], exact["breakdown_value"], exact["value"], strict=True)}
        assert values == {None: overall, "geography": geography, "math": math}, f"{model}: {values}"
        assert (metrics["errors"] == 0).all()
        generations = pd.read_parquet(deployment.outputs("pair", "generations", model))
        assert dict(zip(generations["sample_id"], generations["output"], strict=True)) == RESPONSES[model]

