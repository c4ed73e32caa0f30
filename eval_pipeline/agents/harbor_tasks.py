"""Harbor-format task folders as rollout tasks: a benchmark folder holds one folder per task.

A task folder, as harbor lays it out::

    <task>/instruction.md        the task, given to the agent as the user's prompt (required, not empty)
    <task>/task.toml             settings (required): [metadata] (category, difficulty, tags, …),
                                 [verifier] timeout_sec, [agent] timeout_sec, [environment] memory_mb or memory
    <task>/environment/          the files the agent starts from (copied into its workspace; the Dockerfile and
                                 docker-compose files are not: there is no container here)
    <task>/tests/test_*.py       the verifier: plain test functions (``def test_…(): assert …``)
    <task>/tests/test.sh         harbor's shell entry point; not run (no shell in the sandbox): the test_*.py
                                 files are run as harbor's standard test.sh runs them (all pass → reward 1, else 0)
    <task>/solution/             the oracle's solution (not used)

The verifier runs in the sandbox (``eval_pipeline.sandbox``) on a copy of the trial's workspace with the tests under
``tests/`` and writes the reward to ``logs/verifier/reward.txt`` (a number) or ``reward.json``
(``{"reward": x}``), as harbor's ``/logs/verifier``; paths in tests are relative to the working directory (the
workspace), where harbor's are absolute (``/app``, ``/tests``, ``/logs``). A bad task folder is an
``EvalInputError`` naming the folder's file and field when the benchmark loads.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.data.formats import check_breakdown_keys
from eval_pipeline.data.schemas import SAMPLES
from eval_pipeline.errors import EvalInputError

INSTRUCTION = "instruction.md"
CONFIG = "task.toml"
ENVIRONMENT = "environment"
TESTS = "tests"
NOT_COPIED = frozenset({"Dockerfile", "docker-compose.yaml", "docker-compose.yml", ".dockerignore"})
DEFAULT_VERIFIER_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 1024
TASK_DIR_FIELD = "harbor_task_dir"
"""The samples' metadata field holding the task folder's absolute path (what the environment reads)."""
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_TOML_LINE = re.compile(r"at line (\d+)")


@dataclass(frozen=True)
class HarborTask:
    """One task folder, read and checked: its name, instruction, settings, starting files and verifier tests."""

    name: str
    folder: Path
    instruction: str
    environment_files: Mapping[str, str]
    test_files: Mapping[str, str]
    verifier_timeout_s: float = DEFAULT_VERIFIER_TIMEOUT_S
    agent_timeout_s: float | None = None
    memory_mb: int = DEFAULT_MEMORY_MB
    metadata: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""

    @property
    def category(self) -> str | None:
        value = self.metadata.get("category")
        return None if value is None else str(value)


def load_harbor_benchmark(folder: str | Path, limit: int | None = None) -> list[HarborTask]:
    """Every task folder of a benchmark folder (sorted by name), or the folder itself when it is one task."""
    root = Path(folder)
    if not root.is_dir():
        raise EvalInputError("a harbor benchmark is a folder of task folders; this is not a folder", file=str(root),
                             field="dataset.uri")
    if (root / INSTRUCTION).exists() or (root / CONFIG).exists():
        folders = [root]
    else:
        folders = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not folders:
        raise EvalInputError("no task folders (each with instruction.md and task.toml) in the benchmark",
                             file=str(root), field="dataset.uri")
    folders = folders[:limit] if limit is not None else folders
    return [load_harbor_task(path) for path in folders]


def load_harbor_task(folder: str | Path) -> HarborTask:
    """One task folder; ``EvalInputError`` naming the file and field of the first problem."""
    root = Path(folder).resolve()
    instruction = _text(root / INSTRUCTION, "instruction", required=True).strip()
    if not instruction:
        raise EvalInputError("the instruction is empty", file=str(root / INSTRUCTION), field="instruction")
    config = _config(root / CONFIG)
    verifier = _table(config, "verifier", root)
    agent = _table(config, "agent", root)
    environment = _table(config, "environment", root)
    metadata = _table(config, "metadata", root)
    tests = _files(root / TESTS)
    if not any(_is_python_test(name) for name in tests):
        shell = " (tests/test.sh cannot run here: the sandbox has no shell)" if "test.sh" in tests else ""
        raise EvalInputError(f"no verifier: the task needs tests/test_*.py{shell}", file=str(root / TESTS),
                             field="verifier")
    return HarborTask(
        name=root.name, folder=root, instruction=instruction,
        environment_files={name: text for name, text in _files(root / ENVIRONMENT).items()
                           if name.split("/")[-1] not in NOT_COPIED},
        test_files=tests,
        verifier_timeout_s=_seconds(verifier, "timeout_sec", root / CONFIG, "verifier") or DEFAULT_VERIFIER_TIMEOUT_S,
        agent_timeout_s=_seconds(agent, "timeout_sec", root / CONFIG, "agent"),
        memory_mb=_memory(environment, root / CONFIG), metadata=dict(metadata), digest=_digest(root))


def harbor_samples(folder: str | Path, limit: int | None = None,
                   breakdown_keys: Sequence[str] = ()) -> pd.DataFrame:
    """The benchmark as the ``samples`` table: ``sample_id`` the task's folder name, ``input`` its instruction,
    ``category`` its metadata's category, ``metadata`` the rest of ``[metadata]``, the task folder
    (``harbor_task_dir``) and a digest of the folder's files (so an edited task gets new rollout ids)."""
    rows = [sample_row(task) for task in load_harbor_benchmark(folder, limit)]
    check_breakdown_keys(rows, breakdown_keys, str(folder), limit)
    return pd.DataFrame(rows, columns=SAMPLES.names)


def sample_row(task: HarborTask) -> dict[str, Any]:
    """One task's row of the samples table."""
    metadata = {key: value for key, value in task.metadata.items() if key != "category"}
    metadata |= {TASK_DIR_FIELD: str(task.folder), "task_digest": task.digest}
    row: dict[str, Any] = {"sample_id": task.name, "input": task.instruction, "input_kind": "text",
                           "reference": None, "choices": None, "category": task.category,
                           "metadata": json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str),
                           "source": str(task.folder / INSTRUCTION), "line": 1}
    hashed = {key: row[key] for key in ("input", "input_kind", "reference", "choices", "category")}
    hashed["task_digest"] = task.digest  # not the folder's path: a moved benchmark keeps its rollouts
    row["row_hash"] = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    return row


def _is_python_test(name: str) -> bool:
    leaf = name.split("/")[-1]
    return leaf.startswith("test_") and leaf.endswith(".py")


def _text(path: Path, field_name: str, *, required: bool = False) -> str:
    if not path.is_file():
        if required:
            raise EvalInputError(f"missing {path.name}", file=str(path), field=field_name)
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvalInputError(f"not UTF-8 text: {exc}", file=str(path), field=field_name) from None


def _config(path: Path) -> dict[str, Any]:
    text = _text(path, "task.toml", required=True)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        raise EvalInputError(f"not valid TOML: {exc}", file=str(path), line=int(match[1]) if match else None,
                             field="task.toml") from None


def _table(config: Mapping[str, Any], name: str, root: Path) -> Mapping[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise EvalInputError(f"must be a table ([{name}]), not {type(value).__name__}", file=str(root / CONFIG),
                             field=name)
    return value


def _seconds(table: Mapping[str, Any], key: str, path: Path, section: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise EvalInputError(f"must be a positive number of seconds, got {value!r}", file=str(path),
                             field=f"{section}.{key}")
    return float(value)


def _memory(table: Mapping[str, Any], path: Path) -> int:
    """``memory_mb`` (an integer) or harbor's older ``memory`` ("2G", "512M"), in MiB."""
    if "memory_mb" in table:
        value = table["memory_mb"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 64:
            raise EvalInputError(f"must be an integer ≥ 64 (MiB), got {value!r}", file=str(path),
                                 field="environment.memory_mb")
        return value
    if "memory" in table:
        match = _MEMORY.match(str(table["memory"]))
        if match is None:
            raise EvalInputError(f"must be a size like '2G' or '512M', got {table['memory']!r}", file=str(path),
                                 field="environment.memory")
        scale = {"": 1 / 2**20, "K": 1 / 2**10, "M": 1, "G": 2**10, "T": 2**20}[match[2].upper()]
        return max(64, int(float(match[1]) * scale))
    return DEFAULT_MEMORY_MB


def _files(folder: Path) -> dict[str, str]:
    """The text files under ``folder`` by relative POSIX path ({} when there is no such folder)."""
    if not folder.is_dir():
        return {}
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(folder).as_posix()] = _text(path, folder.name)
    return files


def _digest(root: Path) -> str:
    """A SHA-256 over the folder's files (paths and contents), the solution included."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
