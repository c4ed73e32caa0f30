"""Run the whole test suite in several pytest processes at once, the test files shared out by their recorded
durations (``tests/durations.json``; a file not in it counts as the median), each process with its own temporary
folder. One process streams to the terminal; the others' output follows when each ends. The exit status is the
first non-zero one.

Processes: ``$EVAL_PIPELINE_TEST_PROCESSES``, default the machine's cores, at most 2 (the tests start servers and
browsers of their own). ``$EVAL_PIPELINE_TEST_DURATIONS_OUT=FILE`` writes each test file's measured seconds there
(the format of ``tests/durations.json``, to refresh it).

Arguments go to every pytest; anything but plain output options (``-q``, ``-v``, ``-r…``, ``--durations``) and
``-p PLUGIN`` (a test path, ``-k``, ``-m``, ``-x``, …) runs one pytest process with exactly what was asked.

    .venv/bin/python scripts/run_tests.py [-q] [-p no:cacheprovider]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATIONS = ROOT / "tests" / "durations.json"
PASSED_THROUGH = {"-q", "-v", "-qq", "-rA", "-ra", "-rfE"}
"""Options that keep the whole suite selected (``-p NAME`` too)."""


def processes() -> int:
    wanted = os.environ.get("EVAL_PIPELINE_TEST_PROCESSES")
    return max(1, int(wanted)) if wanted else max(1, min(2, os.cpu_count() or 1))


def whole_suite(args: list[str]) -> bool:
    """Whether ``args`` leave every test selected (only output options and ``-p`` plugins)."""
    rest = iter(args)
    for arg in rest:
        if arg == "-p":
            next(rest, None)
        elif arg not in PASSED_THROUGH and not arg.startswith(("-p", "--durations")):
            return False
    return True


def test_files() -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("test_*.py"))


def shares(files: list[str], weights: dict[str, float], count: int) -> list[list[str]]:
    """The files in ``count`` groups of about equal total weight (the longest first, each to the lightest group)."""
    default = statistics.median(weights.values()) if weights else 1.0
    groups: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(count)]
    for name in sorted(files, key=lambda f: (-weights.get(f, default), f)):
        index = min(range(count), key=lambda i: groups[i][0])
        total, members = groups[index]
        groups[index] = (total + weights.get(name, default), [*members, name])
    return [sorted(members) for _, members in groups if members]


def write_durations(reports: list[Path], target: Path) -> None:
    """Each test file's seconds, summed over its tests in the JUnit reports, as JSON in ``target``."""
    seconds: dict[str, float] = defaultdict(float)
    for report in reports:
        if not report.exists():
            continue
        for case in ElementTree.parse(report).iter("testcase"):
            module = case.get("classname", "").split(".")
            name = "/".join(module[:2]) + ".py" if len(module) >= 2 else ""
            seconds[name] += float(case.get("time") or 0)
    target.write_text(json.dumps({name: round(value, 1) for name, value in sorted(seconds.items()) if name},
                                 indent=0) + "\n")


def main(args: list[str]) -> int:
    python = sys.executable
    count = processes()
    if count == 1 or not whole_suite(args):
        return subprocess.call([python, "-m", "pytest", *args], cwd=ROOT)
    weights = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    groups = shares(test_files(), weights, count)
    with tempfile.TemporaryDirectory(prefix="eval-tests-", ignore_cleanup_errors=True) as scratch:
        logs = [Path(scratch) / f"process-{i}.log" for i in range(len(groups))]
        started = []
        reports = [Path(scratch) / f"junit-{i}.xml" for i in range(len(groups))]
        for i, (group, log) in enumerate(zip(groups, logs, strict=True)):
            command = [python, "-m", "pytest", *args, f"--basetemp={Path(scratch) / f'tmp-{i}'}",
                       f"--junitxml={reports[i]}", *group]
            output = None if i == 0 else log.open("w")
            started.append(subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT))
        codes = []
        for i, process in enumerate(started):
            codes.append(process.wait())
            if i > 0:
                print(f"\n===== pytest process {i + 1} of {len(started)} ({len(groups[i])} files) =====", flush=True)
                print(logs[i].read_text(), flush=True)
        if os.environ.get("EVAL_PIPELINE_TEST_DURATIONS_OUT"):
            write_durations(reports, Path(os.environ["EVAL_PIPELINE_TEST_DURATIONS_OUT"]))
    print(f"pytest processes: exit statuses {codes}", flush=True)
    return next((code for code in codes if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
