"""Wrong completions that try to be scored as passing: every one of them must fail, while right ones still pass.

Each forging completion is wrong (it returns a wrong value, or none) and adds a trick aimed at the verifier: an exit
with status 0 before the tests ran to their end, a fake verdict on every descriptor, a signal, a replaced checker,
builtin or stream, a fork, an exec. The ones marked ``forged before`` were scored as passing by the verifier that
trusted the exit status and the report file (issue 9, item 2).
"""

from __future__ import annotations

import json
import marshal
import sys
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.data.formats import load_samples
from eval_pipeline.sandbox import Check, Program, checked, run_checked, run_programs, verdict
from eval_pipeline.sandbox.check import compile_check
from eval_pipeline.sandbox.outcome import classify
from eval_pipeline.sandbox.report import Report
from eval_pipeline.scoring.code_exec import check_humaneval, score_code_exec
from tests.sandbox_probes import token_hunter

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is tested on Linux")

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
PROBLEMS = [json.loads(line) for line in (DATA / "humaneval_mini.jsonl").read_text().splitlines()]
SUM_SQUARES, PALINDROME = PROBLEMS[0], PROBLEMS[1]  # the second one's test starts with ``def check``
HALF = {"prompt": 'def half(x: float) -> float:\n    """Half of x."""\n', "entry_point": "half",
        "canonical_solution": "    return x / 2\n",
        "test": ("\n\ndef check(candidate):\n    assert abs(candidate(1.0) - 0.5) < 1e-9\n"
                 "    assert abs(candidate(3.0) - 1.5) < 1e-9\n    assert True, 'as HumanEval tests end'\n")}

FORGERIES: dict[str, tuple[dict[str, str], str]] = {
    # forged before: exit status 0 before the tests ran
    "os._exit(0) at import": (SUM_SQUARES, "    return 0\n\nimport os\nos._exit(0)\n"),
    "SystemExit(0) in the function": (SUM_SQUARES, "    raise SystemExit(0)\n"),
    "sys.exit() in the function": (SUM_SQUARES, "    import sys\n    sys.exit()\n"),
    "os._exit(0) from a thread": (SUM_SQUARES, (
        "    import os, threading, time\n    threading.Thread(target=os._exit, args=(0,)).start()\n"
        "    time.sleep(5)\n    return 0\n")),
    "os._exit(0) from a signal handler": (SUM_SQUARES, (
        "    import os, posix, signal\n    signal.signal(signal.SIGUSR1, lambda *_: os._exit(0))\n"
        "    posix.kill(posix.getpid(), signal.SIGUSR1)\n    return 0\n")),
    "exec of a program that exits 0": (SUM_SQUARES, (
        "    import posix, sys\n    posix.execv(sys.executable, [sys.executable, '-c', 'pass'])\n")),
    # forged before: a fake line in the report it inherited, found through /proc/self/fd
    "fake verdicts on every descriptor": (SUM_SQUARES, (
        "    return 0\n\nimport os, posix\n"
        "fake = b'exit 0 0\\npassed 0123456789abcdef0123456789abcdef\\npassed\\nexit'\n"
        "for name in os.listdir('/proc/self/fd'):\n"
        "    for target in (int(name), '/proc/self/fd/' + name):\n"
        "        try:\n"
        "            fd = target if isinstance(target, int) else posix.open(target, os.O_WRONLY | os.O_APPEND)\n"
        "            posix.write(fd, fake)\n"
        "        except OSError:\n"
        "            pass\n")),
    # forged before: the harness's own functions replaced
    "os._exit replaced to exit 0": (SUM_SQUARES, (
        "    return 0\n\nimport os\n_real_exit = os._exit\nos._exit = lambda code: _real_exit(0)\n")),
    "sys.stdout replaced, exit 0 on flush": (SUM_SQUARES, (
        "    return 0\n\nimport os, sys\nclass Out:\n    def write(self, text):\n        return len(text)\n"
        "    def flush(self):\n        os._exit(0)\nsys.stdout = Out()\n")),
    "builtins.abs replaced": (HALF, "    return 0.0\n\nimport builtins\nbuiltins.abs = lambda value: 0\n"),
    "a global shadowing a builtin the test uses": (HALF, "    return 0.0\n\nabs = lambda value: 0\n"),
    "a dangling decorator that swallows check": (PALINDROME, (
        "    return False\n\n@lambda check: (lambda candidate: None)\n")),
    "a trace function that jumps over the asserts": (HALF, (
        "    return 0.0\n\nimport sys\n\ndef _trace(frame, event, arg):\n"
        "    if event == 'call' and frame.f_code.co_name == 'check':\n"
        "        last = max(line for _, _, line in frame.f_code.co_lines() if line)\n"
        "        def _jump(frame, event, arg):\n"
        "            if event == 'line' and frame.f_lineno < last:\n"
        "                frame.f_lineno = last\n"
        "            return _jump\n"
        "        return _jump\n"
        "    return None\n\nsys.settrace(_trace)\n")),
    "an audit hook that swaps check when the test is executed": (SUM_SQUARES, (
        "    return 0\n\nimport gc, sys\n\ndef _swap(event, args):\n    if event == 'exec':\n"
        "        for found in gc.get_objects():\n"
        "            if isinstance(found, dict) and callable(found.get('check')):\n"
        "                found['check'] = lambda candidate: None\n\nsys.addaudithook(_swap)\n")),
    "a sys.monitoring callback, dug out of gc, that jumps over the asserts (3.12+)": (HALF, (
        "    return 0.0\n\nimport gc, sys\n"
        "monitoring = getattr(sys, 'monitoring', None) or next(found for found in gc.get_objects()\n"
        "    if type(found).__name__ == 'module' and found.__name__ == 'sys.monitoring')\n"
        "monitoring.use_tool_id(3, 'x')\n\n"
        "def _line(code, line):\n    frame = sys._getframe(1)\n"
        "    last = max(number for _, _, number in code.co_lines() if number)\n"
        "    if code.co_filename == '<test>' and frame.f_lineno < last:\n        frame.f_lineno = last\n\n"
        "monitoring.register_callback(3, monitoring.events.LINE, _line)\n"
        "monitoring.set_events(3, monitoring.events.LINE)\n")),
    "harness locals rewritten (write-through frames on 3.13+)": (SUM_SQUARES, (
        "    return 0\n\nimport sys\nframe = sys._getframe()\nwhile frame is not None:\n"
        "    scope = frame.f_locals\n"
        "    for name in [name for name in scope if name in ('tests', 'test', 'run')]:\n"
        "        scope[name] = (lambda *args: None) if name == 'run' else compile('pass', '<x>', 'exec')\n"
        "    frame = frame.f_back\n")),
    # failures before as well, kept failing
    "sys.exit(0) and os._exit(0) in atexit": (SUM_SQUARES, (
        "    return 0\n\nimport atexit, os, sys\natexit.register(os._exit, 0)\natexit.register(sys.exit, 0)\n")),
    "SIGKILL to its parent": (SUM_SQUARES, (
        "    import posix, signal\n    posix.kill(posix.getppid(), signal.SIGKILL)\n    return 0\n")),
    "a forked child that prints the pass line": (SUM_SQUARES, (
        "    return 0\n\nimport os, posix\nif os.fork() == 0:\n    print('passed')\n"
        "    for fd in range(1, 64):\n        try:\n            posix.write(fd, b'passed\\n')\n"
        "        except OSError:\n            pass\n    posix._exit(0)\n")),
    "builtins.exec replaced by a no-op": (SUM_SQUARES, (
        "    return 0\n\nimport builtins\nbuiltins.exec = lambda *args, **kwargs: None\n"
        "builtins.compile = lambda *args, **kwargs: None\n")),
    "a BaseException of its own": (SUM_SQUARES, "    class Stop(BaseException):\n        pass\n    raise Stop()\n"),
    "KeyboardInterrupt": (SUM_SQUARES, "    raise KeyboardInterrupt\n"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forging_completion_fails(name: str) -> None:
    problem, completion = FORGERIES[name]
    result = check_humaneval(problem["prompt"], completion, problem["test"], problem["entry_point"], timeout_s=10.0)
    assert not result.passed and result.status != "passed", (name, result)
    assert result.status in ("failed", "memory"), result  # memory: a SIGKILL that was not ours or the CPU limit's


HUNTER = """
import gc, posix, sys, threading

def _hunt():
    seen, frames = [], list(sys._current_frames().values())
    try:
        raise RuntimeError
    except RuntimeError as exc:
        frames.append(exc.__traceback__.tb_frame)
    for frame in frames:
        while frame is not None:
            seen += list(frame.f_locals.values()) + gc.get_referents(frame)
            frame = frame.f_back
    for obj in gc.get_objects():
        seen += [obj] + gc.get_referents(obj)
    lines = set()
    for value in seen:
        values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, str):
                item = item.encode(errors="replace")
            if isinstance(item, bytes) and len(item) >= 39 and item.startswith(b"passed "):
                lines.add(item)
    for line in lines:
        for fd in range(1, 64):
            try:
                posix.write(fd, line)
            except OSError:
                pass
    if lines:
        posix._exit(0)
    return lines

FOUND = _hunt()
def _keep_hunting():
    for _ in range(10):
        FOUND.update(_hunt())
threading.Thread(target=_keep_hunting, daemon=True).start()
"""


def test_a_program_that_searches_frames_and_gc_for_the_verdict_fails() -> None:
    """Written against this harness: it looks for the verdict line in every frame's locals and referents (its own
    thread's and the others'), in everything ``gc`` lists and what those refer to, now and while the test runs."""
    wrong = "    return 0\n" + HUNTER
    result = check_humaneval(SUM_SQUARES["prompt"], wrong, SUM_SQUARES["test"], SUM_SQUARES["entry_point"])
    assert not result.passed and result.status == "failed", result
    assert "AssertionError" in result.stderr_tail
    right = SUM_SQUARES["canonical_solution"] + HUNTER + "print(len(FOUND), 'found')\n"
    result = check_humaneval(SUM_SQUARES["prompt"], right, SUM_SQUARES["test"], SUM_SQUARES["entry_point"])
    assert result.passed and result.stdout_tail == "0 found\n", result


def test_each_forging_problem_passes_with_a_right_completion() -> None:
    for problem in (SUM_SQUARES, PALINDROME, HALF):
        result = check_humaneval(problem["prompt"], problem["canonical_solution"], problem["test"],
                                 problem["entry_point"])
        assert result.passed and result.status == "passed", (problem["entry_point"], result)


RIGHT_WITH_EXTRAS = {
    "doctest under __main__ (settrace(None))": (
        "    return sum(x * x for x in numbers)\n\nif __name__ == '__main__':\n    import doctest\n"
        "    doctest.testmod()\n"),
    "a thread, output and an import": (
        "    import threading\n    box = []\n"
        "    worker = threading.Thread(target=lambda: box.append(sum(x * x for x in numbers)))\n"
        "    worker.start()\n    worker.join()\n    print('computed', box[0])\n    return box[0]\n"),
    "a helper that shadows a builtin for its own use": (
        "    return sum(numbers)\n\ndef sum(values):\n    total = 0\n    for value in values:\n"
        "        total += value * value\n    return total\n"),
    "a program that forks and waits": (
        "    return sum(x * x for x in numbers)\n\nimport os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"),
}


@pytest.mark.parametrize("name", list(RIGHT_WITH_EXTRAS))
def test_a_right_completion_with_extras_still_passes(name: str) -> None:
    result = check_humaneval(SUM_SQUARES["prompt"], RIGHT_WITH_EXTRAS[name], SUM_SQUARES["test"],
                             SUM_SQUARES["entry_point"])
    assert result.passed and result.status == "passed", result


def test_the_scorer_scores_forgeries_zero_and_right_answers_one() -> None:
    samples = load_samples(str(DATA / "humaneval_mini.jsonl")).head(2)
    outputs = [("HumanEvalMini/0", completion) for problem, completion in FORGERIES.values()
               if problem is SUM_SQUARES]
    outputs += [("HumanEvalMini/1", FORGERIES["a dangling decorator that swallows check"][1]),
                ("HumanEvalMini/0", SUM_SQUARES["canonical_solution"]),
                ("HumanEvalMini/1", PALINDROME["canonical_solution"])]
    generations = pd.DataFrame({"sample_id": [s for s, _ in outputs], "output": [o for _, o in outputs],
                                "error": [None] * len(outputs)})
    scores = score_code_exec(samples, generations, workers=2)
    assert [s.value for s in scores] == [0.0] * (len(outputs) - 2) + [1.0, 1.0]
    assert all(s.error is None for s in scores)


def test_a_status_0_exit_without_the_verdict_says_why() -> None:
    result = run_checked("import os\nos._exit(0)\n")
    assert result.status == "failed" and checked.NO_VERDICT.strip() in result.stderr_tail
    assert run_checked("print('ran to the end')\n").status == "passed"
    assert run_checked("raise SystemExit(0)\n").status == "failed"


def test_a_pass_needs_the_verdict_and_a_clean_exit() -> None:
    assert classify(0, False, Report(), "", 11, verdict=True) == "passed"
    assert classify(0, False, Report(wait_status=0), "", 11, verdict=False) == "failed"
    assert classify(1, False, Report(wait_status=256), "", 11, verdict=True) == "failed"
    assert classify(0, True, Report(), "", 11, verdict=True) == "timeout"


def test_the_token_is_nowhere_the_program_can_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The program knows only the token's hash and looks for it in its argv, environment, stdin, the files of its
    sandbox and every descriptor it can read; as a control it finds a token planted in the test code."""
    token, planted = "5" * 32, "a1b2c3d4" * 4
    monkeypatch.setattr(verdict, "new_token", lambda: token.encode())
    scanner = token_hunter(token, planted)
    completion = "    return sum(x * x for x in numbers)\n" + scanner
    test = SUM_SQUARES["test"] + f"\nPLANTED = {planted!r}\n"
    result = run_checked(SUM_SQUARES["prompt"] + completion, check=Check(test, SUM_SQUARES["entry_point"]))
    assert result.passed, result
    assert "PLANTED" in result.stdout_tail and "TOKEN" not in result.stdout_tail, result.stdout_tail


def test_the_program_cannot_read_the_bootstraps_memory() -> None:
    """The bootstrap held the token before the fork: it is not dumpable, so its /proc/<pid>/mem is closed."""
    probe = """
import os
me = os.readlink("/proc/self")
for name in os.listdir("/proc"):
    if name.isdigit() and name != me:
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                if b"boot.main" not in handle.read():
                    continue
            with open(f"/proc/{name}/maps") as handle:
                start = int(handle.readline().split("-")[0], 16)
            fd = os.open(f"/proc/{name}/mem", os.O_RDONLY)
            os.lseek(fd, start, 0)
            print("READ", len(os.read(fd, 64)))
        except OSError as exc:
            print("DENIED", exc.errno)
"""
    result = run_checked(probe)
    assert result.status == "passed", result
    if not result.stdout_tail:
        pytest.skip("the bootstrap is not visible from the sandbox on this host")
    assert "READ" not in result.stdout_tail and "DENIED" in result.stdout_tail, result.stdout_tail


def test_each_run_has_its_own_token() -> None:
    tokens = {verdict.new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) == 32 for t in tokens)


def test_programs_mix_plain_code_and_checked_completions() -> None:
    good = Program(SUM_SQUARES["prompt"] + SUM_SQUARES["canonical_solution"],
            Check(SUM_SQUARES["test"], SUM_SQUARES["entry_point"]))
    results = run_programs(["print(1)\n", good, Program(good.code, Check(HALF["test"], "sum_squares"))], workers=2)
    assert [r.status for r in results] == ["passed", "passed", "failed"]


def test_an_entry_point_must_be_an_identifier() -> None:
    for bad in ("f); import os", "class", ""):
        with pytest.raises(ValueError, match="entry_point"):
            Check("def check(candidate):\n    pass\n", bad)


# ---- the compiled test: check's body inline, or a call by name when it cannot be -------------------------------


def run_compiled(test: str, entry_point: str, completion_source: str) -> dict[str, object]:
    """Execute ``compile_check``'s code the way the sandbox does, in-process, and return the names it left."""
    scope: dict[str, object] = {}
    exec(completion_source, scope)
    exec(marshal.loads(compile_check(test, entry_point))[1], scope)
    return scope


def test_check_is_inlined_with_its_parameter_bound() -> None:
    test = "import math\n\ndef check(f):\n    assert math.isclose(f(2), 4)\n    seen.append('done')\n"
    scope = run_compiled(test, "square", "seen = []\ndef square(x):\n    return x * x\n")
    assert scope["seen"] == ["done"] and scope["f"] is scope["square"]  # the body ran at module level
    with pytest.raises(AssertionError):
        run_compiled(test, "square", "seen = []\ndef square(x):\n    return x + 1\n")


@pytest.mark.parametrize("check", [
    "def check(candidate):\n    if candidate(1) == 1:\n        return\n    assert False\n",
    "def check(candidate, extra=1):\n    assert candidate(1) == extra\n",
    "def wrap(f):\n    return f\n\n@wrap\ndef check(candidate):\n    assert candidate(1) == 1\n",
], ids=["return", "two-parameters", "decorated"])
def test_a_check_that_cannot_be_inlined_is_called_by_name(check: str) -> None:
    _, code = marshal.loads(compile_check(check, "identity"))
    assert "check" in code.co_names and code.co_names[-1] == "identity"  # ends with check(identity)
    run_compiled(check, "identity", "def identity(x):\n    return x\n")
    with pytest.raises(AssertionError):
        run_compiled(check, "identity", "def identity(x):\n    return 0\n")


def test_a_nested_function_with_return_does_not_stop_inlining() -> None:
    test = ("def check(candidate):\n    def twice(x):\n        return candidate(candidate(x))\n"
            "    assert twice(1) == 3\n")
    _, code = marshal.loads(compile_check(test, "inc"))
    assert code.co_names[-1] != "inc" and "twice" in code.co_names
    run_compiled(test, "inc", "def inc(x):\n    return x + 1\n")


def test_a_failing_assert_is_reported_with_its_line() -> None:
    result = check_humaneval(SUM_SQUARES["prompt"], "    return 0\n", SUM_SQUARES["test"], SUM_SQUARES["entry_point"])
    assert result.status == "failed" and 'File "<test>", line 7' in result.stderr_tail
    assert "assert candidate([1, 2, 3]) == 14" in result.stderr_tail and "AssertionError" in result.stderr_tail


def test_a_test_that_does_not_parse_is_an_error_not_a_failure() -> None:
    result = check_humaneval(SUM_SQUARES["prompt"], SUM_SQUARES["canonical_solution"], "def check(:\n", "sum_squares")
    assert result.status == "error" and "does not compile" in result.stderr_tail
