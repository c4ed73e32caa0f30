"""Bad rollout suites fail when they load, before any rollout: an ``EvalInputError`` naming the file, the line and
the field, and through ``eval-pipeline run`` exit code 2 with that message and no Dagster run at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from eval_pipeline.cli import main
from eval_pipeline.data.messages import ToolSpec
from eval_pipeline.errors import EvalInputError
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite

REPO = Path(__file__).resolve().parent.parent
CALCULATOR = "examples.environments.calculator:CalculatorEnvironment"


class BadSchemaEnvironment:
    """An environment whose tool's parameters are not JSON schema (``objekt`` is no JSON type)."""

    @classmethod
    def tool_specs(cls) -> list[ToolSpec]:
        return [ToolSpec(name="lookup", description="Look a key up.", parameters={"type": "objekt"})]

    def reset(self, task: object) -> None: ...

    def step(self, message: object) -> None: ...

    def close(self) -> None: ...


TEMPLATE = """\
suite: bad_rollout
task: {task}
dataset: {{uri: {dataset}}}
models:
  - {model}
environment: {environment}
rollout:
  max_turns: 3
  {key}: {value}
schedule: null
"""
# line numbers in TEMPLATE: task 2, models 4, the model 5, environment 6, rollout 7, the varied key 9
RUNTIME = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/calc_agent-AbC123xyz9"
SERVICE_MODEL = "{name: agent, backend: precomputed, model: my-org/agent-model}"
OPENAI = '{name: policy, backend: openai, base_url: "http://127.0.0.1:9/v1", model: served-model}'


@dataclass(frozen=True)
class Case:
    fields: dict[str, str]
    line: int | None
    field: str
    says: str


CASES = {
    "unknown environment kind": Case({"environment": '{kind: dockerx, path: "a.b:C"}'}, 6, "environment.kind",
                                     "unknown environment 'dockerx'; known: agentcore, harbor, lambda, python"),
    "environment that does not import": Case({"environment": '{kind: python, path: "no_such_pkg.envs:Env"}'}, 6,
                                             "environment.path", "cannot import module 'no_such_pkg.envs'"),
    "sampling_temperature 3.0": Case({"key": "sampling_temperature", "value": "3.0"}, 9,
                                     "rollout.sampling_temperature", "less than or equal to 2"),
    "eval_group_size 0": Case({"key": "eval_group_size", "value": "0"}, 9, "rollout.eval_group_size",
                              "greater than or equal to 1"),
    "top_p 0": Case({"key": "top_p", "value": "0"}, 9, "rollout.top_p", "greater than 0"),
    "pass_k_values above eval_group_size": Case({"key": "pass_k_values", "value": "[1, 8]"}, 9,
                                                "rollout.pass_k_values",
                                                "pass_k_values [8] exceed eval_group_size 4"),
    "stopping_condition 0": Case({"key": "stopping_condition", "value": "0"}, 9, "rollout.stopping_condition",
                                 "greater than 0"),
    "stopping_condition 259201": Case({"key": "stopping_condition", "value": "259201"}, 9,
                                      "rollout.stopping_condition", "less than or equal to 259200"),
    "tool schema that is not JSON schema": Case(
        {"environment": '{kind: python, path: "tests.test_rollout_suite_errors:BadSchemaEnvironment"}'}, 6,
        "environment.tools.lookup.parameters.type", "tool 'lookup': not a valid JSON schema"),
    "a model on a backend without tools": Case(
        {"model": "{name: canned, backend: precomputed, responses: canned.jsonl}"}, 5, "models.0.backend",
        "backend 'precomputed', which cannot call tools"),
    "unknown verifier": Case(
        {"environment": f'{{kind: agentcore, arn: "{RUNTIME}", verifier: numeric_mach}}', "model": SERVICE_MODEL},
        6, "environment.verifier", "unknown scorer 'numeric_mach' (did you mean 'numeric_match'?)"),
    "unknown option of an agent service": Case(
        {"environment": f'{{kind: agentcore, arn: "{RUNTIME}", options: {{user_idd: u1}}}}', "model": SERVICE_MODEL},
        6, "environment.options.user_idd", "unknown setting(s) user_idd for this kind"),
    "a path on an agent service": Case(
        {"environment": f'{{kind: agentcore, arn: "{RUNTIME}", path: "a.b:C"}}', "model": SERVICE_MODEL}, 6,
        "environment.path", "unknown setting(s) path for this kind"),
    "verifier on a python environment": Case(
        {"environment": f'{{kind: python, path: "{CALCULATOR}", verifier: numeric_match}}'}, 6,
        "environment.verifier", "a python environment gives its own reward"),
}


def write_suite(folder: Path, **fields: str) -> Path:
    values = {"task": "rollout", "dataset": str(REPO / "examples" / "data" / "agents" / "calculator.jsonl"),
              "model": OPENAI, "environment": f'{{kind: python, path: "{CALCULATOR}"}}', "key": "seed",
              "value": "0"} | fields
    path = folder / "evals" / "bad_rollout.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(**values))
    return path


def test_the_template_itself_loads(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path))
    assert suite.environment is not None and suite.environment.kind == "python"


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_rollout_suite_is_refused_at_load_with_file_line_and_field(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = write_suite(tmp_path, **case.fields)
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(path), case.line, case.field), str(error)
    assert case.says in error.reason
    assert str(error).startswith(f"{path}:{case.line}: field '{case.field}': ")


@pytest.mark.parametrize("name", ["unknown environment kind", "pass_k_values above eval_group_size",
                                  "tool schema that is not JSON schema", "a model on a backend without tools"])
def test_the_cli_exits_2_with_the_message_and_starts_no_run(name: str, eval_home: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    path = write_suite(tmp_path, **case.fields)
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"{path}:{case.line}: field '{case.field}'" in captured.err and case.says in captured.err
    assert local_instance().get_runs() == []  # refused before any Dagster run, so before any rollout


@pytest.mark.parametrize("key", ["environment", "rollout"])
def test_agent_keys_in_a_generate_suite_are_refused(key: str, tmp_path: Path) -> None:
    path = write_suite(tmp_path, task="generate")
    text = path.read_text()
    if key == "rollout":  # the environment key gone, only the rollout block left
        text = text.replace(f'environment: {{kind: python, path: "{CALCULATOR}"}}\n', "")
    path.write_text(text)
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert caught.value.file == str(path)
    assert key in str(caught.value) and "only for task 'rollout', not task 'generate'" in str(caught.value)


def test_agent_keys_in_a_generate_suite_name_the_line_and_field(tmp_path: Path) -> None:
    path = write_suite(tmp_path, task="generate")
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert (caught.value.line, caught.value.field) == (6, "environment")
