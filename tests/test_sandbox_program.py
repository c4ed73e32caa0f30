"""The sandbox's general API, ``run_python``: output, exit codes, stdin and files, limits, truncation, and that the
program never learns the verdict token; and the package's layout (the child's import path shadows nothing)."""

from __future__ import annotations

import ast
import socket
import sys
from pathlib import Path

import pytest

from eval_pipeline.sandbox import ProgramResult, run_python, verdict
from eval_pipeline.sandbox.output import clip, head_and_tail
from tests.sandbox_probes import token_hunter

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is tested on Linux")

LIMITS = {"timeout_s": 10.0, "memory_mb": 512}
SANDBOX = Path(__file__).resolve().parent.parent / "eval_pipeline" / "sandbox"


def test_output_and_exit_codes() -> None:
    ended = run_python("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n", **LIMITS)
    assert (ended.stdout, ended.stderr, ended.exit_code) == ("out\n", "err\n", 3)
    assert not ended.ok and not ended.completed and not ended.timed_out and ended.error is None
    fine = run_python("print(sum(range(10)))\n", **LIMITS)
    assert (fine.stdout, fine.stderr, fine.exit_code) == ("45\n", "", 0) and fine.ok and fine.completed
    raised = run_python("1 / 0\n", **LIMITS)
    assert raised.exit_code == 1 and "ZeroDivisionError" in raised.stderr and not raised.completed
    broken = run_python("def f(:\n", **LIMITS)
    assert broken.exit_code == 1 and "SyntaxError" in broken.stderr


def test_an_early_exit_with_status_0_is_not_completed() -> None:
    """The exit status says 0; only the verdict channel knows the program stopped before its end."""
    result = run_python("import os\nprint('bye', flush=True)\nos._exit(0)\nprint('never')\n", **LIMITS)
    assert result.exit_code == 0 and result.ok and not result.completed and result.stdout == "bye\n"


def test_stdin_and_files() -> None:
    code = ("import sys\nprint(sys.stdin.read().upper(), end='')\nprint(open('data/in.txt').read())\n"
            "open('made.txt', 'w').write('x')\n")
    result = run_python(code, stdin="abc\n", files={"data/in.txt": "42"}, **LIMITS)
    assert result.stdout == "ABC\n42\n" and result.ok, result
    assert run_python("import sys\nprint(repr(sys.stdin.read()))\n", **LIMITS).stdout == "''\n"


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "", ".", "a/../../b"])
def test_a_file_outside_the_working_directory_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="relative path inside the working directory"):
        run_python("pass\n", files={name: "x"}, **LIMITS)


def test_the_working_directory_is_removed(tmp_path: Path) -> None:
    result = run_python("import os\nprint(os.getcwd())\n", files={"a.txt": "a"}, cwd=tmp_path, **LIMITS)
    assert result.stdout.startswith(str(tmp_path)) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", ["while True:\n    pass\n", "import time\ntime.sleep(60)\n"], ids=["busy", "sleeping"])
def test_a_program_past_its_time_budget_is_timed_out(code: str) -> None:
    result = run_python("print('started', flush=True)\n" + code, timeout_s=0.5, memory_mb=256)
    assert result.timed_out and result.exit_code is None and not result.ok and result.error is None
    assert result.stdout == "started\n"


def test_the_memory_limit() -> None:
    over = run_python("x = bytearray(1024 * 2**20)\n", timeout_s=10.0, memory_mb=256)
    assert over.memory_exceeded and over.exit_code == 1 and "MemoryError" in over.stderr and not over.ok
    under = run_python("x = bytearray(32 * 2**20)\nprint(len(x))\n", timeout_s=10.0, memory_mb=256)
    assert under.ok and not under.memory_exceeded and under.stdout == f"{32 * 2**20}\n"


def test_long_output_keeps_its_start_and_end() -> None:
    text = "HEAD" + "x" * 1492 + "TAIL"  # 1500 characters, cut to 1000
    result = run_python(f"print({text!r}, end='')\n", max_output_chars=1000, **LIMITS)
    assert result.stdout == text[:500] + "\n[... 500 characters cut ...]\n" + text[-500:]
    huge = run_python("import sys\nsys.stdout.write('HEAD' + 'x' * 100000 + 'TAIL')\nsys.stderr.write('e' * 7000)\n",
                      max_output_chars=1000, **LIMITS)
    assert huge.stdout == "HEAD" + "x" * 496 + "\n[... 99008 characters cut ...]\n" + "x" * 496 + "TAIL"
    assert huge.stderr == "e" * 500 + "\n[... 6000 characters cut ...]\n" + "e" * 500


def test_clipping_counts_characters_not_bytes(tmp_path: Path) -> None:
    text = "é" * 30 + "ü" * 30  # 60 characters, 120 bytes
    assert clip(text, 60) == text and clip(text, 10) == "é" * 5 + "\n[... 50 characters cut ...]\n" + "ü" * 5
    path = tmp_path / "out"
    path.write_bytes(text.encode() * 100 + b"\xff")  # 6001 characters (the last one not UTF-8), 12001 bytes
    assert head_and_tail(path, 10) == "é" * 5 + "\n[... 5991 characters cut ...]\n" + "üüüü\ufffd"
    assert head_and_tail(tmp_path / "missing", 10) == ""


def test_bad_limits_are_the_callers_error() -> None:
    for limits in ({"timeout_s": 0, "memory_mb": 256}, {"timeout_s": float("inf"), "memory_mb": 256},
                   {"timeout_s": 1.0, "memory_mb": 0}):
        with pytest.raises(ValueError, match="must be a positive"):
            run_python("pass\n", **limits)
    with pytest.raises(ValueError, match="max_output_chars"):
        run_python("pass\n", max_output_chars=0, **LIMITS)


def test_text_utf8_cannot_encode_does_not_break_the_sandbox() -> None:
    result = run_python("print('a\ud800b')\n", **LIMITS)
    assert result.ok and result.stdout == "a?b\n"


def test_a_sandbox_that_cannot_start_is_an_error_not_a_program_result(tmp_path: Path) -> None:
    result = run_python("print(1)\n", cwd=tmp_path / "missing", **LIMITS)
    assert result.error is not None and "cannot create the sandbox directory" in result.error
    assert result.exit_code is None and not result.ok


def test_no_network_and_no_writes_outside(listener: socket.socket, tmp_path: Path) -> None:
    port = listener.getsockname()[1]
    result = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n", **LIMITS)
    assert result.exit_code == 1 and "PermissionError" in result.stderr
    with pytest.raises(TimeoutError):
        listener.accept()
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')\n", **LIMITS)
    assert result.exit_code == 1 and "PermissionError" in result.stderr and not target.exists()


def test_the_program_never_sees_the_verdict_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's token is known here (injected); the program, told only its hash, searches its argv, environment,
    stdin, every file of its sandbox, every descriptor and its parent's command line and environment. As a control
    it finds a value planted in one of its files; and the run completed, so the injected token was the one used."""
    token, planted = "7" * 32, "c0ffee00" * 4
    drawn: list[bytes] = []

    def injected() -> bytes:
        drawn.append(token.encode())
        return drawn[-1]

    monkeypatch.setattr(verdict, "new_token", injected)
    scanner = token_hunter(token, planted)
    result = run_python(scanner, stdin="some input\n", files={"planted.txt": planted}, **LIMITS)
    assert drawn and result.completed, result
    assert "PLANTED planted.txt" in result.stdout and "TOKEN" not in result.stdout, result.stdout


def test_a_program_result_is_plain_data() -> None:
    result = ProgramResult("a", "b", 0)
    assert result.ok and not result.timed_out and result.error is None and not result.completed


# ---- layout -------------------------------------------------------------------------------------------------


def test_no_sandbox_module_shadows_the_standard_library() -> None:
    """The bootstrap imports ``child`` with eval_pipeline/sandbox first on sys.path: a module there named like a
    standard-library one would replace it in the child's interpreter."""
    names = {path.stem for path in SANDBOX.glob("*.py")} | {path.name for path in SANDBOX.iterdir() if path.is_dir()}
    assert "child" in names and names & set(sys.stdlib_module_names) == set()


def test_the_child_imports_only_the_standard_library_and_itself() -> None:
    for path in (SANDBOX / "child").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            outside = [root for root in roots if root not in sys.stdlib_module_names]
            assert not outside, f"{path.name} imports {outside}"


def test_the_scorers_keep_no_copy_of_the_sandbox() -> None:
    scoring = SANDBOX.parent / "scoring"
    assert not [name for name in ("sandbox.py", "sandbox_child.py", "check_program.py") if (scoring / name).exists()]
