"""The sandbox, the HumanEval verifier and scorer, the HumanEval format, precomputed samples and pass@k."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from math import comb
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.data.formats import load_samples
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.inference.precomputed import PrecomputedSampler
from eval_pipeline.inference.runner import run_generations
from eval_pipeline.metrics.passk_table import pass_k_rows, task_counts
from eval_pipeline.sandbox import CheckResult, fork_limit_enforced, run_checked, run_programs
from eval_pipeline.sandbox import batch as sandbox_batch
from eval_pipeline.scoring.code_exec import check_humaneval, completion_code
from eval_pipeline.scoring.registry import score_generations, validate_scorers
from eval_pipeline.suites.spec import ScorerSpec

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are tested on Linux")

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
PROBLEMS = DATA / "humaneval_mini.jsonl"
COMPLETIONS = DATA / "humaneval_mini_samples.jsonl"
CORRECT_PER_TASK = {"HumanEvalMini/0": 3, "HumanEvalMini/1": 2, "HumanEvalMini/2": 1, "HumanEvalMini/3": 0,
                    "HumanEvalMini/4": 2, "HumanEvalMini/5": 1}


def problem(index: int) -> dict[str, str]:
    return json.loads(PROBLEMS.read_text().splitlines()[index])


# ---- processes left behind ----------------------------------------------------------------------------------


def live_processes(marker: str) -> list[tuple[int, int]]:
    """(pid, process group) of every live, non-zombie process whose command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state, pgrp = _stat(entry)
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append((int(entry.name), pgrp))
    return found


def live_in_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, pgrp = _stat(entry)
            except OSError:
                continue
            if pgrp == pgid and state != "Z":
                found.append(int(entry.name))
    return found


def _stat(entry: Path) -> tuple[str, int]:
    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


class GroupWatcher(threading.Thread):
    """Notes the process groups of sandbox processes (found by their directory) while a run is in progress."""

    def __init__(self, marker: str) -> None:
        super().__init__(daemon=True)
        self.marker, self.groups, self.done = marker, set[int](), threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.groups |= {pgrp for _, pgrp in live_processes(self.marker)}
            time.sleep(0.02)

    def stop(self) -> set[int]:
        self.done.set()
        self.join()
        return self.groups


def run_watched(code: str, tmp_path: Path, **kwargs: float) -> tuple[CheckResult, set[int], float]:
    base = tmp_path / "sandboxes"
    base.mkdir(exist_ok=True)
    watcher = GroupWatcher(str(base))
    watcher.start()
    started = time.perf_counter()
    result = run_checked(code, cwd=base, **kwargs)  # type: ignore[arg-type]
    return result, watcher.stop(), time.perf_counter() - started


# ---- the sandbox ----------------------------------------------------------------------------------------------


def test_correct_code_passes_and_wrong_code_fails() -> None:
    task = problem(0)
    good = check_humaneval(task["prompt"], task["canonical_solution"], task["test"], task["entry_point"])
    assert good.passed and good.status == "passed"
    bad = check_humaneval(task["prompt"], "    return sum(numbers)\n", task["test"], task["entry_point"])
    assert not bad.passed and bad.status == "failed"
    assert "AssertionError" in bad.stderr_tail
    broken = check_humaneval(task["prompt"], "    return (\n", task["test"], task["entry_point"])
    assert broken.status == "failed" and "SyntaxError" in broken.stderr_tail


def test_the_program_runs_in_a_fresh_directory_that_is_removed(tmp_path: Path) -> None:
    code = "import os\nopen('out.txt', 'w').write('kept')\nprint(os.getcwd())\nprint(open('out.txt').read())\n"
    result = run_checked(code, cwd=tmp_path)
    assert result.status == "passed", result.stderr_tail
    workdir, content = result.stdout_tail.split()
    assert workdir.startswith(str(tmp_path)) and content == "kept"
    assert not Path(workdir).exists() and list(tmp_path.iterdir()) == []
    exited = run_checked("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)")
    assert exited.status == "failed" and exited.stdout_tail == "out\n" and exited.stderr_tail == "err\n"


def test_an_infinite_loop_is_killed_within_its_limit(tmp_path: Path) -> None:
    result, groups, wall = run_watched("while True:\n    pass\n", tmp_path, timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert wall <= 1.0 + 2.0
    assert groups, "the watcher never saw the sandbox's processes"
    assert all(live_in_group(pgid) == [] for pgid in groups)
    assert live_processes(str(tmp_path)) == []


@pytest.mark.parametrize("code", ["x = bytearray(4 * 1024 ** 3)\n",
                                  "hoard = []\nwhile True:\n    hoard.append(bytearray(10 ** 7))\n"],
                         ids=["one-allocation", "growing"])
def test_a_memory_bomb_is_stopped_by_its_limit(code: str, tmp_path: Path) -> None:
    result, _, wall = run_watched(code, tmp_path, timeout_s=10.0, memory_mb=256)
    assert result.status == "memory" and not result.passed
    assert wall < 10.0
    assert live_processes(str(tmp_path)) == []
    assert run_checked("print(sum(range(10)))").stdout_tail == "45\n"  # and the host is fine


def test_the_program_cannot_raise_its_own_limits() -> None:
    code = ("import resource\ninf = resource.RLIM_INFINITY\n"
            "for name in ('RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_NPROC'):\n"
            "    try:\n        resource.setrlimit(getattr(resource, name), (inf, inf))\n"
            "    except (ValueError, OSError):\n        continue\n    raise SystemExit(f'raised {name}')\n")
    result = run_checked(code)
    assert result.status == "passed", result.stderr_tail


def test_writing_outside_the_working_directory_fails(tmp_path: Path) -> None:
    target, kept = tmp_path / "escaped.txt", tmp_path / "kept.txt"
    kept.write_text("kept")
    result = run_checked(f"open({str(target)!r}, 'w').write('out')\n")
    assert result.status == "failed" and "PermissionError" in result.stderr_tail
    for code in (f"import os\nos.remove({str(kept)!r})\n", f"import pathlib\npathlib.Path({str(target)!r}).touch()\n",
                 f"import shutil\nshutil.copy({str(kept)!r}, {str(target)!r})\n"):
        assert run_checked(code).status == "failed"
    assert not target.exists() and kept.read_text() == "kept"


def test_the_os_refuses_writes_outside_even_without_the_prelude(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    code = f"import os, posix\nfd = posix.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\nposix.write(fd, b'x')\n"
    result = run_checked(code)
    if "readonly_fs" not in result.isolation:
        pytest.skip(f"no mount namespace on this host (isolation: {result.isolation})")
    assert result.status == "failed" and "Read-only file system" in result.stderr_tail
    assert not target.exists()


def assert_nobody_connected(server: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        server.accept()


def test_opening_a_socket_fails(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run_checked(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).send(b'hi')\n")
    assert result.status == "failed" and "PermissionError" in result.stderr_tail
    assert_nobody_connected(listener)


def test_the_network_namespace_stops_a_socket_that_gets_past_the_prelude(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = ("import socket\nraw = [c for c in socket.socket.__mro__ if c.__module__ == '_socket'][-1]\n"
            f"s = raw(socket.AF_INET, socket.SOCK_STREAM)\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n")
    result = run_checked(code)
    if "netns" not in result.isolation:
        pytest.skip(f"no network namespace on this host (isolation: {result.isolation})")
    assert result.status == "failed" and "OSError" in result.stderr_tail
    assert_nobody_connected(listener)


@pytest.mark.skipif(not fork_limit_enforced(), reason="root without a pids cgroup: RLIMIT_NPROC does not apply")
def test_a_fork_bomb_is_contained(tmp_path: Path) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result, groups, wall = run_watched(code, tmp_path, timeout_s=2.0)
    assert result.status in ("timeout", "failed") and not result.passed
    assert wall <= 2.0 + 3.0
    assert all(live_in_group(pgid) == [] for pgid in groups)
    assert live_processes(str(tmp_path)) == []
    assert subprocess.run([sys.executable, "-c", "pass"], timeout=30).returncode == 0


# ---- HumanEval: format, scorer, precomputed samples, pass@k ----------------------------------------------------


def test_humaneval_rows_become_samples() -> None:
    samples = load_samples(str(PROBLEMS))  # detected from the keys
    assert list(samples["sample_id"]) == [f"HumanEvalMini/{i}" for i in range(6)]
    first = samples.iloc[0]
    assert first["input"] == problem(0)["prompt"] and first["reference"] == problem(0)["canonical_solution"]
    metadata = json.loads(first["metadata"])
    assert metadata["entry_point"] == "sum_squares" and metadata["test"] == problem(0)["test"]
    assert load_samples(str(PROBLEMS), "humaneval").equals(samples)


@pytest.mark.parametrize("fmt", ["humaneval", "auto"])
def test_a_humaneval_row_without_entry_point_is_an_error_naming_it(tmp_path: Path, fmt: str) -> None:
    bad = tmp_path / "bad.jsonl"
    rows = [problem(0), {k: v for k, v in problem(1).items() if k != "entry_point"}]
    bad.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(EvalInputError) as caught:
        load_samples(str(bad), fmt)
    error = caught.value
    assert (error.line, error.field) == (2, "entry_point") and error.file is not None and "bad.jsonl" in error.file
    assert "bad.jsonl:2: field 'entry_point': missing" in str(error)


def test_a_bad_entry_point_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**problem(0), "entry_point": "f); import os; os.system('x'"}) + "\n")
    with pytest.raises(EvalInputError, match="entry_point"):
        load_samples(str(bad), "humaneval")


def mini_generations(num_samples: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    samples = load_samples(str(PROBLEMS))
    sampler = PrecomputedSampler.from_file(str(COMPLETIONS))
    generations, _ = run_generations(samples, "precomputed", sampler, GenerationParams(), num_samples=num_samples)
    return samples, generations


def test_precomputed_task_id_completion_rows_are_three_samples_per_task() -> None:
    _, generations = mini_generations()
    assert len(generations) == 18 and generations["error"].isna().all()
    indices = generations.groupby("sample_id")["sample_index"].apply(sorted).to_dict()
    assert indices == {task: [0, 1, 2] for task in CORRECT_PER_TASK}
    in_file = [json.loads(line) for line in COMPLETIONS.read_text().splitlines()]
    expected = {}
    for row in in_file:
        expected.setdefault(row["task_id"], []).append(row["completion"])
    for generation in generations.itertuples():
        assert generation.output == expected[generation.sample_id][generation.sample_index]


def exact_pass_at_k(counts: dict[str, int], n: int, k: int) -> Fraction:
    per_task = [1 - Fraction(comb(n - c, k), comb(n, k)) for c in counts.values()]
    return sum(per_task, Fraction(0)) / len(per_task)


def test_pass_at_k_on_the_mini_set_equals_the_exact_combinatorial_value() -> None:
    samples, generations = mini_generations()
    validate_scorers([ScorerSpec(name="code_exec")])
    scores = score_generations(samples, generations, [ScorerSpec(name="code_exec")])
    assert len(scores) == 18 and scores["error"].isna().all()
    assert set(scores["extracted"]) == {"passed", "failed"}
    counts = task_counts(scores)
    assert dict(zip(counts["sample_id"], counts["c"], strict=True)) == CORRECT_PER_TASK
    assert (counts["n"] == 3).all()
    table = pass_k_rows(scores, [1, 2, 3], suite="humaneval_mini")
    table = table[table["metric"].str.contains("pass@")]
    assert list(table["metric"]) == [f"code_exec.pass@{k}" for k in (1, 2, 3)] and list(table["k"]) == [1, 2, 3]
    for k, value in zip(table["k"], table["value"], strict=True):
        assert value == pytest.approx(float(exact_pass_at_k(CORRECT_PER_TASK, 3, k)), abs=1e-12)
    assert exact_pass_at_k(CORRECT_PER_TASK, 3, 1) == Fraction(1, 2)  # hand check: 9 correct of 18
    assert exact_pass_at_k(CORRECT_PER_TASK, 3, 2) == Fraction(13, 18)
    assert (table["n"] == 6).all() and (table["errors"] == 0).all()


def test_pass_at_k_leaves_out_tasks_with_too_few_samples_and_error_rows() -> None:
    scores = pd.DataFrame({
        "sample_id": ["a", "a", "a", "b", "b", "c"], "model": "m", "sample_index": [0, 1, 2, 0, 1, 0],
        "scorer": "code_exec", "score": [1.0, 0.0, 0.0, 1.0, None, 0.0],
        "error": [None, None, None, None, "sandbox failure", None]})
    table = pass_k_rows(scores, [1, 2])
    table = table[table["metric"].str.contains("pass@")]
    pass1, pass2 = table["value"]
    assert pass1 == pytest.approx((1 / 3 + 1 + 0) / 3)  # b counts one sample (its error row is left out)
    assert pass2 == pytest.approx(float(1 - Fraction(comb(2, 2), comb(3, 2))))  # only a has 2 or more
    assert list(table["n"]) == [3, 1] and list(table["errors"]) == [1, 1]


def test_the_scorer_reports_errors_only_for_infrastructure_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = pd.DataFrame({"sample_id": ["plain"], "input": ["2 + 2?"], "metadata": ["{}"], "reference": ["4"]})
    samples = pd.concat([load_samples(str(PROBLEMS)).head(2), plain], ignore_index=True)
    generations = pd.DataFrame({
        "sample_id": ["HumanEvalMini/0", "HumanEvalMini/0", "HumanEvalMini/1", "plain", "missing"], "model": "m",
        "sample_index": [0, 1, 0, 0, 0], "request_hash": "h",
        "output": ["    return 0\n", None, "```python\n    return text == text[::-1]\n```", "4", "x"],
        "error": [None, "timed out", None, None, None]})
    scores = score_generations(samples, generations, [ScorerSpec(name="tests", type="code_exec")])
    assert list(scores["score"].fillna(-1)) == [0.0, -1, 0.0, -1, -1]
    assert list(scores["extracted"].fillna("-")) == ["failed", "-", "failed", "-", "-"]
    assert pd.isna(scores["error"][0]) and pd.isna(scores["error"][2])  # failing programs are scores, not errors
    assert "generation failed" in scores["error"][1]
    assert "'test' and 'entry_point'" in scores["error"][3] and "no sample 'missing'" in scores["error"][4]

    def broken(*_: object, **__: object) -> CheckResult:
        raise OSError("no python")
    monkeypatch.setattr(sandbox_batch, "run_checked", broken)
    failed = score_generations(samples, generations.head(1), [ScorerSpec(name="code_exec")])
    assert failed["score"].isna().all() and "no python" in failed["error"][0]


def test_parallel_verification_keeps_the_order() -> None:
    programs = [f"import time\ntime.sleep({0.05 * (i % 3)})\nprint({i})\n" for i in range(8)]
    results = run_programs(programs, workers=4)
    assert [r.stdout_tail.strip() for r in results] == [str(i) for i in range(8)]
    assert run_programs([], workers=2) == []


def test_completion_code_takes_a_fenced_block() -> None:
    assert completion_code("    return 1\n") == "    return 1\n"
    assert completion_code("Here:\n```python\ndef f():\n    return 1\n```\nDone.") == "def f():\n    return 1\n"
    assert completion_code("```\nx = 1\n") == "x = 1\n"


def test_environment_is_minimal() -> None:
    os.environ["HTTPS_PROXY"] = "http://proxy.invalid:1"
    try:
        result = run_checked("import os\nprint(sorted(k for k in os.environ if 'PROXY' in k.upper()))\n"
                            "print(os.environ['HOME'] == os.getcwd())\n")
    finally:
        del os.environ["HTTPS_PROXY"]
    assert result.stdout_tail.split() == ["[]", "True"]


def test_the_humaneval_suite_reports_exact_pass_at_k(eval_home: Path) -> None:
    from eval_pipeline.execution import run_suite
    from eval_pipeline.instance import local_instance
    from eval_pipeline.suites import load_suite

    result = run_suite(load_suite(Path(__file__).resolve().parents[1] / "evals" / "humaneval_mini.yaml"),
                       local_instance())
    assert result.success, result.models[0].error
    metrics = result.metrics.set_index("metric")
    for k in (1, 2, 3):
        assert metrics.loc[f"code_exec.pass@{k}", "value"] == pytest.approx(
            float(exact_pass_at_k(CORRECT_PER_TASK, 3, k)), abs=1e-12)
        exact_hat = sum((Fraction(comb(c, k), comb(3, k)) for c in CORRECT_PER_TASK.values()), Fraction(0))
        assert metrics.loc[f"code_exec.pass^{k}", "value"] == pytest.approx(
            float(exact_hat / len(CORRECT_PER_TASK)), abs=1e-12)
    assert metrics.loc["code_exec", "value"] == pytest.approx(9 / 18)
    logged = [e.user_message for e in local_instance().all_logs(result.models[0].dagster_run_id)
              if e.dagster_event is None and " verification: " in e.user_message]
    counts = [int(m.split(": ", 1)[1].removeprefix("done ").split("/")[0]) for m in logged]
    assert counts == list(range(19))  # every verified program (5% of 18 is one), the rate on the last line
    assert logged[-1].startswith("humaneval_mini/") and " done 18/18 in " in logged[-1] and "check" in logged[-1]


def test_benchmark_evaluator_gives_the_suites_pass_at_k(eval_home: Path) -> None:
    from eval_pipeline.evaluations import Benchmark, BenchmarkEvaluator
    from eval_pipeline.execution import run_suite
    from eval_pipeline.inference.precomputed import PrecomputedSampler
    from eval_pipeline.instance import local_instance
    from eval_pipeline.suites import load_suite

    suite = load_suite(Path(__file__).resolve().parents[1] / "evals" / "humaneval_mini.yaml")
    metrics = run_suite(suite, local_instance()).metrics.set_index("metric")
    evaluator = BenchmarkEvaluator(name="he", benchmark=Benchmark.from_suite(suite), num_samples=3,
                                   metrics=["pass@1", "pass@2", "pass^2", "mean_reward"])
    values = evaluator.evaluate(PrecomputedSampler.from_file(str(DATA / "humaneval_mini_samples.jsonl")))
    assert values["pass@1"] == metrics.loc["code_exec.pass@1", "value"]
    assert values["pass@2"] == metrics.loc["code_exec.pass@2", "value"]
    assert values["pass^2"] == metrics.loc["code_exec.pass^2", "value"]
    assert values["mean_reward"] == metrics.loc["code_exec", "value"]
