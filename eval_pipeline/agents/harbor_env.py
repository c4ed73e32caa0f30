"""The ``harbor`` environment kind: the model under test works on a Harbor task in a workspace of its own, with the
sandbox's tools, and the task's verifier gives the reward.

```yaml
task: rollout
dataset: {uri: benchmarks/my_harbor_tasks}          # a folder of Harbor task folders
environment: {kind: harbor, options: {workspace_dir: runs/workspaces, tool_timeout_s: 10}}
```

Each trial (one rollout) gets a fresh workspace: a copy of the task's ``environment/`` files in a new folder under
``workspace_dir`` (kept there for inspection), or in a temporary folder removed when the trial ends. The agent's
tools act on it: ``python`` runs a program in the sandbox on a copy of the workspace and keeps what it wrote,
``write_file``, ``read_file`` and ``list_files`` act on the workspace directly (paths relative to it, never out of
it). The episode ends when the model replies without a tool call; then the verifier (``tests/test_*.py`` run by a
small runner in the sandbox, as harbor's standard ``test.sh`` runs pytest) writes ``logs/verifier/reward.txt`` or
``reward.json``, and that number is the reward. A verifier that writes no reward file (it crashed, ran out of time
or memory, or wrote something that is not a number) is an error row with its reason (``error_source``
environment), never a 0. The verifier runs in the same interpreter as the agent's code it imports: the agent could
write the reward file from that code, as in harbor's own container; the runner writes it last, after every test.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from eval_pipeline.agents.environment import AgentTask, Environment
from eval_pipeline.agents.harbor_tasks import TASK_DIR_FIELD, HarborTask, harbor_samples, load_harbor_task
from eval_pipeline.agents.tool_environment import ToolEnvironment
from eval_pipeline.agents.tools import ToolError, tool
from eval_pipeline.errors import EvalInputError
from eval_pipeline.sandbox.execution import SandboxFailure
from eval_pipeline.sandbox.workspace import WorkspaceRun, run_on_workspace

REWARD_FILES = ("logs/verifier/reward.txt", "logs/verifier/reward.json")
OPTIONS = {"workspace_dir": (str, type(None)), "tool_timeout_s": (int, float), "tool_memory_mb": (int,),
           "max_output_chars": (int,), "system_prompt": (str, type(None)), "verifier_timeout_s": (int, float),
           "conversational": (bool,)}

SYSTEM_PROMPT = (
    "You are working on a task in a workspace folder. Tools: list_files() lists its files, read_file(path) and "
    "write_file(path, content) read and write them, python(code) runs a Python program in the workspace (no "
    "network) and keeps the files it writes. Paths are relative to the workspace. When the task is done, reply "
    "with a short message and no tool call.")

VERIFIER_RUNNER = r'''
import importlib.util, os, sys, traceback
sys.path.insert(0, os.getcwd())
sys.dont_write_bytecode = True
passed = failed = 0
for path in TEST_FILES:
    name = "verifier_" + path.replace("/", "_").removesuffix(".py")
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException:
        failed += 1
        print(f"ERROR collecting {path}", flush=True)
        traceback.print_exc()
        continue
    for attribute, value in list(vars(module).items()):
        if attribute.startswith("test") and callable(value) and getattr(value, "__module__", None) == name:
            try:
                value()
            except BaseException:
                failed += 1
                print(f"FAILED {path}::{attribute}", flush=True)
                traceback.print_exc()
            else:
                passed += 1
                print(f"PASSED {path}::{attribute}", flush=True)
print(f"{passed} passed, {failed} failed", flush=True)
os.makedirs("logs/verifier", exist_ok=True)
for leftover in ("logs/verifier/reward.json",):
    if os.path.exists(leftover):
        os.remove(leftover)
with open("logs/verifier/reward.txt", "w") as handle:
    handle.write("1" if passed and not failed else "0")
'''


class VerifierError(Exception):
    """The verifier gave no reward (no reward file, or one that is not a number): the trial is an error row."""


@functools.lru_cache(maxsize=256)
def cached_task(folder: str, digest: str) -> HarborTask:
    """The task folder, read once per content (``digest`` keys the cache)."""
    return load_harbor_task(folder)


def verify(task: HarborTask, workspace: Mapping[str, str], *, timeout_s: float | None = None) -> tuple[float, str]:
    """Run the task's verifier on the workspace's files in the sandbox; the reward and the verifier's output.
    ``VerifierError`` (with the reason and the output's tail) when it wrote no usable reward file."""
    files = {name: text for name, text in workspace.items()
             if PurePosixPath(name).parts[0] not in ("tests", "logs")}
    files |= {f"tests/{name}": text for name, text in task.test_files.items()}
    tests = sorted(f"tests/{name}" for name in task.test_files
                   if name.split("/")[-1].startswith("test_") and name.endswith(".py"))
    program = f"TEST_FILES = {tests!r}\n{VERIFIER_RUNNER}"
    run = run_on_workspace(program, files, timeout_s=timeout_s or task.verifier_timeout_s,
                           memory_mb=task.memory_mb)
    log = _output(run)
    if run.result.error is not None:
        raise SandboxFailure(run.result.error)
    written = {name: run.files[name] for name in REWARD_FILES if name in run.files}
    if not written:
        how = ("ran out of time" if run.result.timed_out else "ran out of memory" if run.result.memory_exceeded
               else f"exited with status {run.result.exit_code}")
        raise VerifierError(f"the verifier wrote no reward file ({' or '.join(REWARD_FILES)}); it {how}. "
                            f"Output: {log[-1500:]}")
    name, text = next(iter(written.items()))
    return parse_reward(text, name), log


def parse_reward(text: str, name: str) -> float:
    """The number in ``reward.txt``, or ``reward.json``'s ``reward`` (or its only value)."""
    try:
        if name.endswith(".json"):
            data = json.loads(text)
            if isinstance(data, Mapping):
                values = [data["reward"]] if "reward" in data else list(data.values())
                if len(values) != 1:
                    raise ValueError(f"several rewards and none named 'reward': {sorted(data)}")
                data = values[0]
            value = float(data) if not isinstance(data, bool) else math.nan
        else:
            value = float(text.strip())
    except (ValueError, TypeError, KeyError) as exc:
        raise VerifierError(f"{name} does not hold a reward: {text[:200]!r} ({exc})") from None
    if not math.isfinite(value):
        raise VerifierError(f"{name} does not hold a finite number: {text[:200]!r}")
    return value


class HarborEnvironment(ToolEnvironment):
    """One trial of a Harbor task (the task folder comes from the task's ``harbor_task_dir``)."""

    system_prompt = SYSTEM_PROMPT

    def __init__(self, conversational: bool = False, *, workspace_dir: str | None = None,
                 tool_timeout_s: float = 10.0, tool_memory_mb: int = 512, max_output_chars: int = 4000,
                 system_prompt: str | None = None, verifier_timeout_s: float | None = None) -> None:
        super().__init__(conversational=conversational)
        self.workspace_dir = workspace_dir
        self.tool_timeout_s, self.tool_memory_mb = float(tool_timeout_s), int(tool_memory_mb)
        self.max_output_chars = int(max_output_chars)
        self.prompt_override = system_prompt
        self.verifier_timeout_s = verifier_timeout_s
        self.harbor: HarborTask | None = None
        self.workspace: Path | None = None
        self._owned = False
        self.verifier_output = ""

    def instructions(self, task: AgentTask) -> str:
        return self.prompt_override if self.prompt_override is not None else self.system_prompt

    def setup(self, task: AgentTask) -> None:
        folder = task.data.get(TASK_DIR_FIELD)
        if not folder:
            raise EvalInputError(f"task {task.task_id!r} has no {TASK_DIR_FIELD}: a harbor environment runs the "
                                 "tasks of a harbor benchmark folder (the suite's dataset)", field=TASK_DIR_FIELD)
        self.harbor = cached_task(str(folder), str(task.data.get("task_digest", "")))
        self.close()
        if self.workspace_dir is not None:
            Path(self.workspace_dir).mkdir(parents=True, exist_ok=True)
            self.workspace, self._owned = Path(tempfile.mkdtemp(prefix=f"{self.harbor.name}-",
                                                                dir=self.workspace_dir)), False
        else:
            self.workspace, self._owned = Path(tempfile.mkdtemp(prefix=f"harbor-{self.harbor.name}-")), True
        self._replace_files(dict(self.harbor.environment_files))

    # -- tools -----------------------------------------------------------------------------------------------

    @tool
    def list_files(self) -> str:
        """List the workspace's files, one relative path a line."""
        return "\n".join(self._files()) or "(the workspace is empty)"

    @tool
    def read_file(self, path: str) -> str:
        """Read a text file of the workspace.

        Args:
            path: the file's path, relative to the workspace.
        """
        target = self._path(path)
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the workspace")
        try:
            return target.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path!r} is not UTF-8 text") from None
        except OSError as exc:
            raise ToolError(f"cannot read {path!r}: {exc.strerror or exc}") from None

    @tool
    def write_file(self, path: str, content: str) -> str:
        """Write (create or replace) a text file of the workspace.

        Args:
            path: the file's path, relative to the workspace.
            content: the file's whole text.
        """
        target = self._path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except OSError as exc:  # a folder in the way, a name too long: the model's to read, not a crash
            raise ToolError(f"cannot write {path!r}: {exc.strerror or exc}") from None
        return f"wrote {len(content)} characters to {path}"

    @tool
    def python(self, code: str) -> str:
        """Run a Python 3 program in the workspace (a sandbox: no network); files it writes are kept.

        Args:
            code: the complete program; print() what you want to see.
        """
        run = run_on_workspace(in_workspace(code), self._contents(), timeout_s=self.tool_timeout_s,
                               memory_mb=self.tool_memory_mb, max_output_chars=self.max_output_chars)
        if run.result.error is not None:
            raise SandboxFailure(run.result.error)
        self._replace_files(run.files, keep=set(run.skipped))  # binary or too large: left as they were
        text = _output(run)
        if not run.result.ok:
            raise ToolError(text)
        return text

    # -- reward ----------------------------------------------------------------------------------------------

    def reward(self) -> float:
        if self.harbor is None:
            raise VerifierError("the episode never started")
        value, self.verifier_output = verify(self.harbor, self._contents(), timeout_s=self.verifier_timeout_s)
        return value

    def close(self) -> None:
        if self.workspace is not None and self._owned:
            shutil.rmtree(self.workspace, ignore_errors=True)
        if self._owned:
            self.workspace = None

    # -- the workspace ---------------------------------------------------------------------------------------

    def _path(self, path: str) -> Path:
        if self.workspace is None:
            raise ToolError("there is no workspace (the episode has not started)")
        relative = PurePosixPath(path)
        if not path or relative.is_absolute() or ".." in relative.parts:
            raise ToolError(f"{path!r} is not a relative path inside the workspace")
        return self.workspace / relative

    def _files(self) -> list[str]:
        if self.workspace is None:
            return []
        return sorted(p.relative_to(self.workspace).as_posix() for p in self.workspace.rglob("*")
                      if p.is_file() and not p.is_symlink())

    def _contents(self) -> dict[str, str]:
        assert self.workspace is not None
        contents = {}
        for name in self._files():
            try:
                contents[name] = (self.workspace / name).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
        return contents

    def _replace_files(self, files: Mapping[str, str], keep: set[str] | None = None) -> None:
        """Make the workspace hold exactly ``files`` (and the ``keep`` files as they are)."""
        assert self.workspace is not None
        for name in self._files():
            if name not in files and name not in (keep or set()):
                (self.workspace / name).unlink()
        for name, text in files.items():
            target = self.workspace / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_file() or target.read_text(encoding="utf-8", errors="replace") != text:
                target.write_text(text, encoding="utf-8")


def in_workspace(code: str) -> str:
    """``code`` run as a script in the workspace is: its folder first on ``sys.path`` (the sandbox's interpreter
    runs isolated, ``-I``), its tracebacks naming ``<program>`` with its own line numbers."""
    return ("import os, sys\nsys.path.insert(0, os.getcwd())\n"
            f"exec(compile({code!r}, '<program>', 'exec'), {{'__name__': '__main__', '__builtins__': __builtins__}})\n")


def _output(run: WorkspaceRun) -> str:
    result = run.result
    parts = [result.stdout]
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr)
    if result.timed_out:
        parts.append("[timed out]")
    elif result.memory_exceeded:
        parts.append("[ran out of memory]")
    if result.exit_code not in (0, None):
        parts.append(f"[exit code {result.exit_code}]")
    return "\n".join(part.rstrip("\n") for part in parts if part) or "(no output)"


class HarborKind:
    """The ``harbor`` entry of the environment registry: validate options, build environments, read the
    benchmark folder named by the suite's dataset as its tasks."""

    name: ClassVar[str] = "harbor"
    provides: ClassVar[str] = "environment"

    @classmethod
    def validate(cls, config: Any, file: str | None = None, *, root: str | Path | None = None,
                 field: str = "environment") -> dict[str, Any]:
        """The environment's options (``workspace_dir`` made absolute against ``root``)."""
        options = dict(_setting(config, "options") or {})
        if _setting(config, "path"):
            raise EvalInputError("a harbor environment reads its tasks from the suite's dataset (a benchmark "
                                 "folder); it takes no 'path'", file=file, field=f"{field}.path")
        for key, value in options.items():
            types = OPTIONS.get(key)
            if types is None:
                raise EvalInputError(f"unknown option {key!r}; options: {', '.join(OPTIONS)}", file=file,
                                     field=f"{field}.options.{key}")
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise EvalInputError(f"must be {' or '.join(t.__name__ for t in types)}, got {value!r}", file=file,
                                     field=f"{field}.options.{key}")
            if not isinstance(value, bool) and isinstance(value, int | float) and not value > 0:
                raise EvalInputError(f"must be positive, got {value!r}", file=file, field=f"{field}.options.{key}")
        if options.get("workspace_dir") is not None and root is not None:
            options["workspace_dir"] = str(Path(root) / options["workspace_dir"])
        return options

    @classmethod
    def factory(cls, config: Any, *, root: str | Path | None = None, file: str | None = None,
                field: str = "environment") -> Callable[[], Environment]:
        options = cls.validate(config, file, root=root, field=field)
        return functools.partial(HarborEnvironment, **options)

    @classmethod
    def build(cls, config: Any, *, root: str | Path | None = None, file: str | None = None,
              **_hooks: Any) -> Environment:
        return cls.factory(config, root=root, file=file)()

    @classmethod
    def fingerprint(cls, config: Any, *, root: str | Path | None = None) -> dict[str, str]:
        """The code that runs a trial and its verifier (the tasks' own files are in each task's row hash)."""
        from eval_pipeline.sandbox import workspace

        sources = {}
        for module in (__file__, workspace.__file__):
            sources[f"source:{Path(module).stem}"] = hashlib.sha256(Path(module).read_bytes()).hexdigest()
        return sources

    @classmethod
    def label(cls, config: Any) -> str:
        return cls.name

    @classmethod
    def load_samples(cls, uri: str, fmt: str = "auto", limit: int | None = None, breakdown_keys: Any = ()) -> Any:
        """The benchmark folder's tasks as the samples table (``harbor_tasks.harbor_samples``; the dataset's
        ``format`` is not read: a benchmark folder has one)."""
        return harbor_samples(uri, limit, breakdown_keys)


def _setting(config: Any, name: str) -> Any:
    if isinstance(config, Mapping):
        return config.get(name)
    return getattr(config, name, None)


HARBOR = HarborKind
