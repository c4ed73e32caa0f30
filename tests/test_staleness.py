"""Staleness through a real Dagster instance: a two-model judged suite evaluated against a fake Bedrock (models and
judge); only the judge's rubric changes; the code location, loaded the way the UI loads it (a code server process),
reports through GraphQL exactly the judgments and metrics partitions stale; the staleness sensor's tick requests
exactly those; running them sends only judge requests, and afterwards nothing is stale."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from eval_pipeline.automation.staleness import staleness_sensor_name
from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import load_suite
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

N = 5
BASE, TUNED, JUDGE = "amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
MODELS = ("base", "tuned")
NODES_QUERY = """
query Nodes { assetNodes { assetKey { path } isPartitioned staleStatus } }
"""
PARTITIONS_QUERY = """
query Partitions($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) { assetKey { path } partitionKeys staleStatusByPartition }
}
"""


def answer(prompt: str) -> str:
    return str(2 * int(prompt.split()[2]))


def tuned_answer(prompt: str) -> str:
    return f"It is {answer(prompt)}."


@pytest.fixture
def router() -> ModelRouter:
    return ModelRouter({BASE: answer, TUNED: tuned_answer, JUDGE: scripted_judge(lambda fields, prompt: "Good")})


@pytest.fixture
def fake(aws_env: str, monkeypatch: pytest.MonkeyPatch, router: ModelRouter) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer=router, known_models=set(router.responders)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server


def rubric(instructions: str) -> list[dict]:
    return [{"customMetricDefinition": {
        "name": "Helpful", "instructions": f"{instructions}\nPrompt: {{{{prompt}}}}\nResponse: {{{{prediction}}}}",
        "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                        {"definition": "Poor", "value": {"floatValue": 0}}]}}]


def write_project(folder: Path) -> Path:
    """The suite file (its judge's rubric in ``rubric.json``) and a code location file loading it."""
    (folder / "evals").mkdir(parents=True)
    (folder / "qa.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n"
        for i in range(N)))
    (folder / "rubric.json").write_text(json.dumps(rubric("Is the response helpful?")))
    path = folder / "evals" / "judged.yaml"
    path.write_text(f"""suite: judged
dataset: {{uri: qa.jsonl}}
models:
  - {{name: base, backend: bedrock, model: {BASE}}}
  - {{name: tuned, backend: bedrock, model: {TUNED}}}
generation: {{max_tokens: 16}}
scorers: [exact_match]
judge:
  model: {{backend: bedrock, model: {JUDGE}}}
  custom_metrics: rubric.json
schedule: null
""")
    (folder / "location.py").write_text(
        "from eval_pipeline.suite_definitions import build_definitions\n"
        "from eval_pipeline.suites import load_suite\n\n"
        f"defs = build_definitions([load_suite({str(path)!r})])\n")
    return path


def stale_in_ui(instance: dg.DagsterInstance, location: Path) -> dict[tuple[str, str | None], str]:
    """Every (stage, partition) whose stale status is not FRESH, read through GraphQL from a code server that
    loads the location file now (as the webserver does after a reload)."""
    with define_out_of_process_context(str(location), "defs", instance) as context:
        nodes = execute_dagster_graphql(context, NODES_QUERY).data["assetNodes"]
        found = {(n["assetKey"]["path"][-1], None): n["staleStatus"] for n in nodes if not n["isPartitioned"]}
        keys = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
        for node in execute_dagster_graphql(context, PARTITIONS_QUERY, {"keys": keys}).data["assetNodes"]:
            found |= {(node["assetKey"]["path"][-1], partition): status
                      for partition, status in zip(node["partitionKeys"], node["staleStatusByPartition"], strict=True)}
    return {key: status for key, status in found.items() if status != "FRESH"}


def sensor_tick(instance: dg.DagsterInstance, defs: dg.Definitions, cursor: str | None) -> dg.SensorResult:
    """One tick of the suite's staleness sensor, evaluated as the code server evaluates it."""
    repository = defs.get_repository_def()
    sensor = repository.get_sensor_def(staleness_sensor_name("judged"))
    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                  repository_def=repository, cursor=cursor)
    return sensor.evaluate_tick(context)


def requested(result: dg.SensorResult) -> set[tuple[str, str]]:
    return {(key.path[-1], request.partition_key) for request in result.run_requests
            for key in request.asset_selection or ()}


def execute(instance: dg.DagsterInstance, defs: dg.Definitions, request: dg.RunRequest) -> None:
    """Run what the sensor requested, as the run launcher would: its assets, partition and tags."""
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                    asset_selection=list(request.asset_selection or ()), tags=request.tags)
    assert result.success


@pytest.mark.slow
def test_a_changed_rubric_makes_only_judgments_and_metrics_stale_and_reruns_only_them(
        eval_home: Path, fake: FakeLLMServer, router: ModelRouter, tmp_path: Path) -> None:
    path = write_project(tmp_path / "project")
    location = path.parent.parent / "location.py"
    instance = local_instance()
    assert run_suite(load_suite(path), instance).success
    assert router.calls[BASE] == N and router.calls[TUNED] == N and router.calls[JUDGE] == 2 * N
    assert stale_in_ui(instance, location) == {}

    (path.parent.parent / "rubric.json").write_text(json.dumps(rubric("Is the response helpful and polite?")))
    expected = {(stage, model) for stage in ("judgments", "metrics") for model in MODELS}
    assert stale_in_ui(instance, location) == dict.fromkeys(expected, "STALE")

    instance.add_dynamic_partitions("judged_models", ["newcomer"])  # a model never evaluated: not for this sensor
    defs = build_definitions([load_suite(path)])
    tick = sensor_tick(instance, defs, None)
    assert requested(tick) == expected
    assert {request.partition_key for request in tick.run_requests} == set(MODELS)  # one run per model
    router.calls.clear()
    for request in tick.run_requests:
        execute(instance, defs, request)
    assert dict(router.calls) == {JUDGE: 2 * N}  # re-judged, nothing generated again
    assert set(stale_in_ui(instance, location).values()) == {"MISSING"}  # the newcomer's stages only
    assert requested(sensor_tick(instance, defs, tick.cursor)) == set()


@pytest.mark.parametrize("shards", [1, 2])
def test_the_staleness_sensor_targets_the_versioned_stages_without_a_condition_of_their_own(
        tmp_path: Path, shards: int) -> None:
    path = write_project(tmp_path / "project")
    path.write_text(path.read_text() + f"shards: {shards}\nbaseline: base\n"
                    "gates: {baseline: base, metrics: {exact_match: {max_regression: 0.1}}}\n"
                    "promote: {mlflow_tags: {released: 'yes'}}\n")
    defs = build_definitions([load_suite(path)])
    assert dg.AssetKey(["judged", "promotion"]) in defs.resolve_asset_graph().get_all_asset_keys()
    sensor = defs.get_repository_def().get_sensor_def(staleness_sensor_name("judged"))
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    targets = {key.path[-1] for key in sensor.asset_selection.resolve(defs.resolve_asset_graph())}
    stages = {"samples", "generations", "scores", "judgments", "metrics", "comparison"}  # not promotion: it acts
    assert targets == (stages if shards == 1 else stages - {"metrics"})  # sharded: metrics follow their shards
