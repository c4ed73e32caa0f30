"""Harbor-format task folders: the loader (bad folders are input errors naming file and field), the harbor
environment's workspace and tools, its verifier's reward file, and a harbor suite's checks when it loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from eval_pipeline.agents.environment import AgentTask
from eval_pipeline.agents.harbor_env import HarborEnvironment, HarborKind, VerifierError, parse_reward, verify
from eval_pipeline.agents.harbor_tasks import TASK_DIR_FIELD, harbor_samples, load_harbor_benchmark
from eval_pipeline.agents.registry import ENVIRONMENTS
from eval_pipeline.data.messages import ChatMessage, ToolCall
from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites import load_suite

BENCHMARK = Path(__file__).resolve().parent / "fixtures" / "harbor" / "benchmark"


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A writable copy of the fixture benchmark."""
    return Path(shutil.copytree(BENCHMARK, tmp_path / "bench"))


def test_the_loader_reads_the_task_folders() -> None:
    tasks = {task.name: task for task in load_harbor_benchmark(BENCHMARK)}
    assert sorted(tasks) == ["count-lines", "crashing-verifier", "fix-add", "hello-file"]
    hello = tasks["hello-file"]
    assert hello.instruction == (BENCHMARK / "hello-file" / "instruction.md").read_text().strip()
    assert hello.environment_files == {}  # the Dockerfile is not a workspace file
    assert sorted(hello.test_files) == ["test.sh", "test_outputs.py"]
    assert (hello.verifier_timeout_s, hello.agent_timeout_s, hello.memory_mb) == (30.0, 60.0, 512)
    assert tasks["fix-add"].memory_mb == 512 and tasks["fix-add"].environment_files == {
        "calc.py": "def add(a, b):\n    return a - b\n"}
    assert tasks["count-lines"].memory_mb == 1024 and tasks["count-lines"].category == "files"

    samples = harbor_samples(BENCHMARK, limit=2, breakdown_keys=["category", "difficulty"])
    assert list(samples["sample_id"]) == ["count-lines", "crashing-verifier"]
    assert list(samples["category"]) == ["files", "code"] and samples["row_hash"].is_unique
    assert all(Path(p).is_dir() for p in samples["metadata"].map(lambda m: yaml.safe_load(m)[TASK_DIR_FIELD]))
    assert len(load_harbor_benchmark(BENCHMARK / "fix-add")) == 1  # one task folder alone is a benchmark too


def test_an_edited_task_gets_a_new_row_hash_and_a_moved_one_keeps_it(bench: Path, tmp_path: Path) -> None:
    before = harbor_samples(bench).set_index("sample_id")["row_hash"]
    moved = harbor_samples(shutil.copytree(bench, tmp_path / "moved")).set_index("sample_id")["row_hash"]
    assert moved.equals(before)
    (bench / "fix-add" / "tests" / "test_calc.py").write_text("def test_nothing():\n    pass\n")
    after = harbor_samples(bench).set_index("sample_id")["row_hash"]
    assert after["fix-add"] != before["fix-add"] and after.drop("fix-add").equals(before.drop("fix-add"))


@pytest.mark.parametrize(("edit", "file", "field", "line"), [
    (lambda t: (t / "instruction.md").unlink(), "instruction.md", "instruction", None),
    (lambda t: (t / "instruction.md").write_text("  \n"), "instruction.md", "instruction", None),
    (lambda t: (t / "task.toml").unlink(), "task.toml", "task.toml", None),
    (lambda t: (t / "task.toml").write_text('version = "1.0"\n\n[verifier\ntimeout_sec = 3\n'), "task.toml",
     "task.toml", 3),
    (lambda t: (t / "task.toml").write_text("[verifier]\ntimeout_sec = -5\n"), "task.toml", "verifier.timeout_sec",
     None),
    (lambda t: (t / "task.toml").write_text("[environment]\nmemory = 'lots'\n"), "task.toml", "environment.memory",
     None),
    (lambda t: (t / "task.toml").write_text("verifier = 3\n"), "task.toml", "verifier", None),
    (lambda t: (t / "tests" / "test_outputs.py").unlink(), "tests", "verifier", None),
    (lambda t: (t / "environment" / "blob.bin").write_bytes(b"\xff\xfe\x00"), "environment/blob.bin", "environment",
     None),
])
def test_a_bad_task_folder_is_an_input_error_naming_file_and_field(bench: Path, edit, file: str, field: str,
                                                                   line: int | None) -> None:
    task = bench / "hello-file"
    (task / "environment").mkdir(exist_ok=True)
    edit(task)
    with pytest.raises(EvalInputError) as error:
        load_harbor_benchmark(bench)
    assert error.value.file == str(task.resolve() / file) and error.value.field == field
    assert error.value.line == line
    if file == "tests":
        assert "tests/test.sh cannot run here" in error.value.reason  # test.sh alone: said why


def test_a_benchmark_that_is_not_a_folder_of_tasks(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="not a folder"):
        load_harbor_benchmark(tmp_path / "missing")
    with pytest.raises(EvalInputError, match="no task folders"):
        load_harbor_benchmark(tmp_path)


def test_rewards_from_the_reward_file() -> None:
    assert parse_reward(" 0.75\n", "logs/verifier/reward.txt") == 0.75
    assert parse_reward('{"reward": 1}', "logs/verifier/reward.json") == 1.0
    assert parse_reward('{"accuracy": 0.5}', "logs/verifier/reward.json") == 0.5
    for text, name in (("yes", "reward.txt"), ("nan", "reward.txt"), ('{"a": 1, "b": 0}', "reward.json"),
                       ("true", "reward.json"), ("[1]", "reward.json")):
        with pytest.raises(VerifierError):
            parse_reward(text, name)


def call(name: str, **arguments: object) -> ChatMessage:
    import json

    return ChatMessage(role="assistant", content="", tool_calls=(ToolCall(id=f"c-{name}", name=name,
                                                                          arguments=json.dumps(arguments)),))


def test_an_episode_in_the_workspace_with_the_sandbox_tools(tmp_path: Path) -> None:
    [sample] = harbor_samples(BENCHMARK / "fix-add").to_dict("records")
    task = AgentTask(task_id=sample["sample_id"], prompt=sample["input"], data=yaml.safe_load(sample["metadata"]))
    environment = HarborEnvironment(workspace_dir=str(tmp_path / "ws"))
    reset = environment.reset(task)
    assert [m.role for m in reset.messages] == ["system", "user"] and reset.messages[1].content == task.prompt
    assert [t.name for t in reset.tools] == ["list_files", "read_file", "write_file", "python"]
    [workspace] = (tmp_path / "ws").iterdir()
    assert (workspace / "calc.py").read_text().endswith("a - b\n")

    step = environment.step(call("read_file", path="../etc/passwd"))
    assert step.observations[0].is_error and "inside the workspace" in step.observations[0].content
    step = environment.step(call("write_file", path="calc.py/x", content="y"))  # a file in the way
    assert step.observations[0].is_error and "cannot write" in step.observations[0].content and not step.done
    step = environment.step(call("python", code="import calc; print(calc.add(2, 3))"))
    assert step.observations[0].content.strip() == "-1" and not step.done
    step = environment.step(call("python", code="raise SystemExit(4)"))
    assert step.observations[0].is_error and "[exit code 4]" in step.observations[0].content
    step = environment.step(call("python", code=(
        "import os\nos.makedirs('notes')\nopen('notes/n.txt', 'w').write('x')\n"
        "open('calc.py', 'w').write('def add(a, b):\\n    return a + b\\n')")))
    assert not step.observations[0].is_error
    assert environment.step(call("list_files")).observations[0].content == "calc.py\nnotes/n.txt"
    assert "a + b" in (workspace / "calc.py").read_text()

    final = environment.step(ChatMessage(role="assistant", content="Fixed."))
    assert final.done and final.reward == 1.0 and final.error is None
    assert "2 passed, 0 failed" in environment.verifier_output
    environment.close()
    assert (workspace / "calc.py").is_file()  # a workspace under workspace_dir is kept


def test_a_temporary_workspace_is_removed_and_no_reward_file_is_an_error() -> None:
    [sample] = harbor_samples(BENCHMARK / "crashing-verifier").to_dict("records")
    task = AgentTask(task_id=sample["sample_id"], prompt=sample["input"], data=yaml.safe_load(sample["metadata"]))
    environment = HarborEnvironment()
    environment.reset(task)
    workspace = environment.workspace
    assert workspace is not None and (workspace / "README.txt").is_file()
    final = environment.step(ChatMessage(role="assistant", content="Nothing to do."))
    assert final.done and final.reward is None and final.error_source == "environment"
    assert "wrote no reward file" in (final.error or "") and "exited with status 3" in (final.error or "")
    environment.close()
    assert not workspace.exists()


def test_the_verifier_reads_the_workspace_not_its_tests_or_logs() -> None:
    [task] = load_harbor_benchmark(BENCHMARK / "hello-file")
    # the agent's own tests/ and logs/ (a forged reward file) are not what the verifier sees
    forged = {"logs/verifier/reward.txt": "1", "tests/test_outputs.py": "def test_ok():\n    pass\n"}
    reward, output = verify(task, forged)
    assert reward == 0.0 and "FAILED" in output
    assert verify(task, {"hello.txt": "Hello, world!"})[0] == 1.0


def write_suite(folder: Path, dataset: str, environment: dict) -> Path:
    path = folder / "harbor.yaml"
    path.write_text(yaml.safe_dump({
        "suite": "harbor_check", "task": "rollout", "dataset": {"uri": dataset},
        "models": [{"name": "m", "backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "x"}],
        "environment": environment, "rollout": {"eval_group_size": 1, "sampling_temperature": 0.0},
        "schedule": None}))
    return path


def test_a_harbor_suite_is_checked_when_it_loads(bench: Path, tmp_path: Path) -> None:
    assert "harbor" in ENVIRONMENTS and ENVIRONMENTS.get("harbor") is HarborKind
    suite = load_suite(write_suite(tmp_path, str(bench), {"kind": "harbor", "options": {"workspace_dir": "ws"}}))
    assert suite.environment is not None and suite.environment.kind == "harbor"

    (bench / "fix-add" / "task.toml").write_text("[verifier]\ntimeout_sec = 'soon'\n")
    with pytest.raises(EvalInputError) as error:
        load_suite(write_suite(tmp_path, str(bench), {"kind": "harbor"}))
    assert error.value.file == str((bench / "fix-add" / "task.toml").resolve())
    assert error.value.field == "verifier.timeout_sec"

    for environment, field in (({"kind": "harbor", "options": {"workspace": "x"}}, "workspace"),
                               ({"kind": "harbor", "options": {"tool_timeout_s": 0}}, "tool_timeout_s"),
                               ({"kind": "harbor", "path": "x:Y"}, "path")):
        with pytest.raises(EvalInputError) as error:
            load_suite(write_suite(tmp_path, str(BENCHMARK), environment))
        assert field in str(error.value)
