"""Stage versions: each moves with exactly what changes its stage's output, and is the same on every load, in any
process and wherever the project lies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import stage_versions as sv
from eval_pipeline.tasks.stage_versions import code_digest, own_versions, stage_versions

JUDGE = "anthropic.claude-3-5-haiku-20241022-v1:0"


def rubric(instructions: str) -> list[dict[str, Any]]:
    return [{"customMetricDefinition": {
        "name": "Helpful", "instructions": f"{instructions}\nPrompt: {{{{prompt}}}}\nResponse: {{{{prediction}}}}",
        "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                        {"definition": "Poor", "value": {"floatValue": 0}}]}}]


def spec(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "suite": "versions", "dataset": {"uri": "qa.jsonl"},
        "models": [{"name": "base", "backend": "bedrock", "model": "amazon.nova-micro-v1:0"}],
        "generation": {"max_tokens": 16, "temperature": 0.0},
        "scorers": ["exact_match", {"name": "answer", "type": "regex_match", "pattern": "[0-9]+"}],
        "judge": {"model": {"backend": "bedrock", "model": JUDGE}, "custom_metrics": rubric("Is it helpful?")},
        "breakdown_keys": ["category"], "max_error_rate": 0.1, "baseline": "base",
    }
    for key, value in changes.items():
        data[key] = value
    return data


def suite(**changes: Any) -> Suite:
    return Suite.model_validate(spec(**changes))


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {stage for stage in before if before[stage] != after[stage]}


def judge(**model: Any) -> dict[str, Any]:
    return {"model": {"backend": "bedrock", "model": JUDGE, **model}, "custom_metrics": rubric("Is it helpful?")}


def test_a_changed_rubric_changes_only_the_judgments_own_version() -> None:
    before, after = suite(), suite(judge={**judge(), "custom_metrics": rubric("Is it helpful and polite?")})
    assert changed(own_versions(before), own_versions(after)) == {"judgments"}
    assert changed(stage_versions(before), stage_versions(after)) == {"judgments", "metrics", "comparison",
                                                                      "pairwise"}


def test_a_changed_judge_model_changes_the_judgments_but_its_concurrency_changes_nothing() -> None:
    assert changed(own_versions(suite()), own_versions(suite(judge=judge(model="amazon.nova-pro-v1:0")))) == {
        "judgments"}
    assert changed(own_versions(suite()), own_versions(suite(judge=judge(n_concurrent=32, timeout_s=5)))) == set()


def test_a_changed_generation_parameter_changes_only_the_production_version() -> None:
    before, after = suite(), suite(generation={"max_tokens": 16, "temperature": 0.7})
    assert changed(own_versions(before), own_versions(after)) == {sv.PRODUCTION}
    assert changed(stage_versions(before), stage_versions(after)) == {
        "generations", "scores", "judgments", "metrics", "comparison", "pairwise"}  # all read the generations


@pytest.mark.parametrize(("changes", "stage"), [
    ({"scorers": ["exact_match", {"name": "answer", "type": "regex_match", "pattern": "[0-9]+$"}]}, "scores"),
    ({"max_error_rate": 0.2}, "metrics"),
    ({"pass_k": [1]}, "metrics"),
    ({"dataset": {"uri": "qa.jsonl", "limit": 3}}, "samples"),
])
def test_each_stage_config_moves_its_own_version_only(changes: dict[str, Any], stage: str) -> None:
    assert changed(own_versions(suite()), own_versions(suite(**changes))) == {stage}


def test_the_samples_version_does_not_chain_into_the_model_stages() -> None:
    """A new dataset reaches the model stages through the samples' data version (its content), not their code."""
    after = stage_versions(suite(dataset={"uri": "qa.jsonl", "limit": 3}))
    assert changed(stage_versions(suite()), after) == {"samples"}


def test_names_models_and_locations_change_no_version() -> None:
    more_models = [*spec()["models"], {"name": "tuned", "backend": "bedrock", "model": "amazon.nova-lite-v1:0"}]
    for changes in ({"models": more_models}, {"description": "nightly"}, {"mlflow_experiment": "elsewhere"},
                    {"schedule": None}, {"base_dir": "/somewhere/else"}, {"source_path": "/x/evals/v.yaml"}):
        assert changed(stage_versions(suite()), stage_versions(suite(**changes))) == set(), changes


def test_every_suite_field_is_versioned_or_said_to_change_nothing() -> None:
    """A new suite field must be placed: in a stage's inputs, or among the fields that change no output."""
    placed = {name for fields in sv.STAGE_FIELDS.values() for name in fields} | sv.UNVERSIONED_FIELDS
    kind_fields = {"environment", "rollout", "user_simulator", "traces"}  # the task kinds' suite_keys
    assert set(Suite.model_fields) - placed - kind_fields == set()


def test_a_custom_metrics_file_counts_by_its_content(tmp_path: Path) -> None:
    (tmp_path / "rubric.json").write_text(json.dumps(rubric("Is it helpful?")))
    judged = {"model": {"backend": "bedrock", "model": JUDGE}, "custom_metrics": "rubric.json"}
    before = own_versions(suite(judge=judged, base_dir=str(tmp_path)))
    (tmp_path / "rubric.json").write_text(json.dumps(rubric("Is it helpful and short?")))
    assert changed(before, own_versions(suite(judge=judged, base_dir=str(tmp_path)))) == {"judgments"}


def test_versions_are_the_same_in_another_process_and_another_folder(tmp_path: Path) -> None:
    here = stage_versions(suite())
    assert stage_versions(suite()) == here
    script = ("import json, sys; from eval_pipeline.suites.spec import Suite; "
              "from eval_pipeline.tasks.stage_versions import stage_versions; "
              "print(json.dumps(stage_versions(Suite.model_validate(json.loads(sys.argv[1])))))")
    data = spec(base_dir=str(tmp_path / "a" / "copy"))
    done = subprocess.run([sys.executable, "-c", script, json.dumps(data)], capture_output=True, text=True,
                          check=True, cwd=tmp_path, env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert json.loads(done.stdout) == here


def test_the_code_digest_follows_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "versioned_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scorer.py").write_text("def score(a, b):\n    return float(a == b)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_digest(("versioned_plugin",))
    assert code_digest(("versioned_plugin",)) == before
    (package / "scorer.py").write_text("def score(a, b):\n    return float(a.strip() == b.strip())\n")
    sv._module_digest.cache_clear()  # a process sees its code once; a new process reads it again
    assert code_digest(("versioned_plugin",)) != before
    assert code_digest(("versioned_plugin", "versioned_plugin.scorer")) != code_digest(("versioned_plugin",))


def test_a_rollout_suite_versions_its_rollout_settings_and_environment_code_in_the_production_stage(
        tmp_path: Path) -> None:
    from eval_pipeline.suites import load_suite

    agents = load_suite(Path(__file__).resolve().parents[1] / "evals" / "agent_quickstart.yaml")
    assert agents.rollout is not None and agents.environment is not None
    more_turns = agents.model_copy(update={"rollout": agents.rollout.model_copy(update={"max_turns": 4})})
    assert changed(own_versions(agents), own_versions(more_turns)) == {sv.PRODUCTION}
    assert "examples.environments.calculator" in sv.stage_inputs(agents)[sv.PRODUCTION].code
    environment = tmp_path / "envs" / "calc.py"
    environment.parent.mkdir()
    environment.write_text("class Calc: ...\n")
    local = agents.model_copy(update={"base_dir": str(tmp_path), "environment": agents.environment.model_copy(
        update={"path": "envs/calc.py:Calc"})})
    before = own_versions(local)
    environment.write_text("class Calc:\n    tools = []\n")
    sv._module_digest.cache_clear()
    assert changed(before, own_versions(local)) == {sv.PRODUCTION}  # the environment's code is the rollouts'


def test_a_traces_suite_versions_its_sources_and_its_ground_truth_file_by_content(tmp_path: Path) -> None:
    from eval_pipeline.suites import load_suite

    repo = Path(__file__).resolve().parents[1]
    traces = load_suite(repo / "evals" / "traces_quickstart.yaml")
    assert traces.traces is not None and isinstance(traces.traces.evaluationMetadata, str)
    truth = tmp_path / "truth.json"
    truth.write_text((repo / traces.traces.evaluationMetadata).read_text())
    local = traces.model_copy(update={"traces": traces.traces.model_copy(update={"evaluationMetadata": str(truth)})})
    before = own_versions(local)
    truth.write_text(json.dumps({**json.loads(truth.read_text()), "note": "edited"}))
    sv._module_digest.cache_clear()
    assert changed(before, own_versions(local)) == {"scores", "judgments"}
    assert "traces" in sv.stage_inputs(local)["samples"].config  # the sessions come from the traces spec


def test_a_top_level_module_counts_by_its_own_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lone_scorer.py").write_text("def score(a, b):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_digest(("lone_scorer",))
    (tmp_path / "unrelated.py").write_text("x = 1\n")  # a neighbour in the same folder is not its code
    sv._module_digest.cache_clear()
    assert code_digest(("lone_scorer",)) == before
