"""``run_supervised``: a stop signal ends the child's whole tree, stubborn or escaped processes included.

Each test runs the supervisor in a real subprocess (signal handlers belong to a main thread), over a real tree of
Python processes that write their pids to a file; what is alive is read with psutil, independently of the
``/proc`` reader under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from eval_pipeline import process_tree

psutil = pytest.importorskip("psutil")

WAIT_S = 60.0  # a bound on every wait, far above what each step needs; never a timing assertion

# The child: starts the grandchildren described by argv, writes every pid, then waits. On SIGINT/SIGTERM it exits
# at once (as `dagster dev` does once its own children are stopped), leaving its grandchildren to the supervisor.
CHILD = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    pid_file, exit_code, *kinds = sys.argv[1:]
    GRANDCHILD = {
        "polite": "import time\\nwhile True: time.sleep(1)",
        "stubborn": "import signal, time\\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\\n"
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: time.sleep(1)",
        "escaped": "import os, signal, time\\nos.setsid()\\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\\n"
                   "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: time.sleep(1)",
    }
    def stop(signum, frame):
        sys.exit(0)
    handler = signal.SIG_IGN if exit_code == "ignore" else stop  # "ignore": a child that does not stop when asked
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    pids = [os.getpid()] + [subprocess.Popen([sys.executable, "-c", GRANDCHILD[kind]]).pid for kind in kinds]
    time.sleep(0.5)  # the escaped one has called setsid by now (the test also waits for its new session)
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(" ".join(map(str, pids)))
    os.replace(pid_file + ".tmp", pid_file)
    if exit_code == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif exit_code not in ("wait", "ignore"):
        sys.exit(int(exit_code))
    while True:
        time.sleep(1)
""")

SUPERVISOR = textwrap.dedent("""
    import sys
    from pathlib import Path
    from eval_pipeline.process_tree import run_supervised
    stopping_file, grace_s, kill_after_s, *command = sys.argv[1:]
    sys.exit(run_supervised(command, grace_s=float(grace_s), kill_after_s=float(kill_after_s),
                            on_stop=lambda signum: Path(stopping_file).write_text(str(signum))))
""")

REPO = Path(__file__).resolve().parent.parent


def _poll(probe: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _handle(pid: int) -> psutil.Process | None:
    """A handle on the process, or None when it has already ended (a child that exits at once may be gone before
    the test reads its pid: ended is what the test wants of it anyway)."""
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


class Tree:
    """A supervisor subprocess over the test child, and the psutil handles of every process the child wrote."""

    def __init__(self, tmp_path: Path, kinds: list[str], *, exit_code: str = "wait", grace_s: float = 30.0,
                 kill_after_s: float = 1.0) -> None:
        pid_file, self.stopping_file = tmp_path / "pids", tmp_path / "stopping"
        self.supervisor = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR, str(self.stopping_file), str(grace_s), str(kill_after_s),
             sys.executable, "-c", CHILD, str(pid_file), exit_code, *kinds],
            cwd=REPO, start_new_session=True)
        try:
            _poll(pid_file.is_file, "the child's pid file")
            self.processes = [process for pid in pid_file.read_text().split()
                              if (process := _handle(int(pid))) is not None]
            if "escaped" in kinds:
                escaped = self.processes[1 + kinds.index("escaped")]
                _poll(lambda: os.getsid(escaped.pid) == escaped.pid, "the escaped grandchild's own session")
        except BaseException:
            self.supervisor.kill()
            raise

    def survivors(self) -> list[psutil.Process]:
        return [process for process in self.processes if _running(process)]

    def assert_all_gone(self) -> None:
        _poll(lambda: not self.survivors(), "every process of the tree to end")

    def cleanup(self) -> None:
        for process in self.survivors():
            process.kill()
        if self.supervisor.poll() is None:
            self.supervisor.kill()
            self.supervisor.wait(timeout=WAIT_S)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_ends_stubborn_and_escaped_grandchildren(tmp_path: Path, sig: signal.Signals,
                                                                code: int) -> None:
    tree = Tree(tmp_path, ["polite", "stubborn", "escaped"], grace_s=1.0, kill_after_s=1.0)
    try:
        assert len(tree.survivors()) == 4
        tree.supervisor.send_signal(sig)
        assert tree.supervisor.wait(timeout=WAIT_S) == code
        assert tree.stopping_file.read_text() == str(int(sig))
        tree.assert_all_gone()
    finally:
        tree.cleanup()


@pytest.mark.parametrize(("how", "code"), [("3", 3), ("kill", 128 + signal.SIGKILL)])
def test_a_child_that_ends_by_itself_keeps_its_exit_code_and_leaves_nothing(tmp_path: Path, how: str,
                                                                             code: int) -> None:
    tree = Tree(tmp_path, ["polite", "stubborn"], exit_code=how, kill_after_s=1.0)
    try:
        assert tree.supervisor.wait(timeout=WAIT_S) == code
        assert not tree.stopping_file.exists()  # no signal came: nothing was said
        tree.assert_all_gone()
    finally:
        tree.cleanup()


def test_a_second_signal_skips_the_grace_period(tmp_path: Path) -> None:
    tree = Tree(tmp_path, ["stubborn"], exit_code="ignore", grace_s=3600.0, kill_after_s=1.0)
    try:
        tree.supervisor.send_signal(signal.SIGINT)
        _poll(tree.stopping_file.is_file, "the supervisor to take the first SIGINT")  # two at once can merge
        tree.supervisor.send_signal(signal.SIGINT)
        assert tree.supervisor.wait(timeout=WAIT_S) == 130  # not after the hour of grace
        tree.assert_all_gone()
    finally:
        tree.cleanup()


def test_proc_reader_agrees_with_psutil(tmp_path: Path) -> None:
    tree = Tree(tmp_path, ["polite", "escaped"])
    try:
        child = tree.processes[0]
        expected = {(p.pid, p.ppid(), os.getpgid(p.pid)) for p in tree.processes}
        stats = [process_tree.read_stat(p.pid) for p in tree.processes]
        assert {(s.pid, s.ppid, s.pgid) for s in stats if s is not None} == expected
        found = {process.pid for process in process_tree.tree(child.pid)}
        assert found == {p.pid for p in child.children(recursive=True)} == {p.pid for p in tree.processes[1:]}
        assert process_tree.read_stat(2**22 + 1) is None  # above Linux's pid_max: no such process
    finally:
        tree.cleanup()


def test_stat_parsing_handles_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    fake = tmp_path / "proc"
    (fake / "42").mkdir(parents=True)
    fields = ["S", "7", "9", "9"] + ["0"] * 15 + ["123456"] + ["0"] * 30
    (fake / "42" / "stat").write_text(f"42 (a) b (c) {' '.join(fields)}\n")
    assert process_tree.read_stat(42, fake) == process_tree.ProcStat(pid=42, state="S", ppid=7, pgid=9, start=123456)
