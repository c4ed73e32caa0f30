"""Running untrusted Python on a workspace: the sandbox's ``run_python``, and the working directory read back.

``run_on_workspace(code, files, …)`` writes ``files`` (relative path → text) into a fresh sandbox working directory,
runs ``code`` there under the same isolation and limits as ``run_python`` and returns its ``ProgramResult`` with
the working directory's files as the program left them (``WorkspaceRun.files``): what an agent's tool call changed
in its workspace, or the reward file a verifier wrote. Files that are not UTF-8 text or larger than
``max_file_chars`` are left out and named in ``skipped``. The directory is read after the program and everything
it started have ended, before the sandbox removes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eval_pipeline.sandbox import output
from eval_pipeline.sandbox.execution import SandboxFailure, execute
from eval_pipeline.sandbox.limits import Limits
from eval_pipeline.sandbox.outcome import status_of
from eval_pipeline.sandbox.program import MAX_OUTPUT_CHARS, ProgramResult

MAX_WORKSPACE_FILE_CHARS = 1_000_000


@dataclass(frozen=True)
class WorkspaceRun:
    """How the program ended, and the working directory's text files after it (relative POSIX path → text)."""

    result: ProgramResult
    files: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()


def run_on_workspace(code: str, files: Mapping[str, str], *, timeout_s: float, memory_mb: int,
                     max_output_chars: int = MAX_OUTPUT_CHARS,
                     max_file_chars: int = MAX_WORKSPACE_FILE_CHARS) -> WorkspaceRun:
    """Run ``code`` as ``__main__`` with ``files`` in its working directory; never raises for anything the code
    does (a sandbox that cannot run gives ``result.error`` and no files)."""
    started = time.perf_counter()
    seen: dict[str, str] = {}
    skipped: list[str] = []

    def read_output(path: Path) -> str:
        if path.name == "stdout":  # execute reads stdout first, after the run: the working directory is final
            _snapshot(path.parent / "work", seen, skipped, max_file_chars)
        return output.head_and_tail(path, max_output_chars)

    try:
        run = execute(code, Limits(timeout_s, memory_mb), files=files, read_output=read_output)
    except SandboxFailure as exc:
        return WorkspaceRun(ProgramResult("", "", None, error=str(exc), duration_s=time.perf_counter() - started))
    status = status_of(run)
    if status == "error":
        return WorkspaceRun(ProgramResult(run.stdout, run.stderr, None, duration_s=run.duration_s,
                                          error=f"the sandbox could not start: {run.stderr.strip()}"))
    timed_out = status == "timeout"
    exit_code = None if timed_out else run.report.exit_code
    if exit_code is None and not timed_out:
        exit_code = run.returncode
    result = ProgramResult(run.stdout, run.stderr, exit_code, timed_out=timed_out, memory_exceeded=status == "memory",
                           completed=status == "passed", duration_s=run.duration_s, isolation=run.report.isolation)
    return WorkspaceRun(result, dict(sorted(seen.items())), tuple(sorted(skipped)))


def _snapshot(work: Path, seen: dict[str, str], skipped: list[str], max_chars: int) -> None:
    for path in sorted(work.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        name = path.relative_to(work).as_posix()
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            skipped.append(name)
            continue
        if len(text) > max_chars:
            skipped.append(name)
            continue
        seen[name] = text
