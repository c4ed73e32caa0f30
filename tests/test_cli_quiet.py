"""A quiet, complete command line: --help with examples and no markup, --version, plain output without the
libraries' housekeeping (Dagster DEBUG events, migration lines, FutureWarnings, terminal escapes) unless --verbose,
and `list` / `ui` outside a project saying what is missing and how to fix it."""

import json
import os
import re
import subprocess
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import pytest

from eval_pipeline.cli import _parser, main
from eval_pipeline.quiet_output import configure_output, quiet_child_processes, quiet_dagster_warnings

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("run", "list", "ui", "batch-evaluation", "backfill", "report")
ESCAPES = re.compile(r"\x1b\[|\r")
MARKUP = re.compile(r"``|%\(\w+\)s|\*\*|:\w+:`|\]\(")
"""reST/markdown left in help text: double backticks, an argparse placeholder, bold, a role, a link."""
NOISE = ("DEBUG", "alembic", "Creating initial MLflow database tables", "Warning:", "dg dev")


def help_text(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_examples_and_no_markup(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(*([command] if command else []), capsys=capsys)
    examples = text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert 2 <= len(examples) <= 5, text
    assert all(line.startswith("  eval-pipeline ") or "eval-pipeline " in line for line in examples), examples
    if command:
        assert all(f"eval-pipeline {command}" in line for line in examples), examples
    assert not MARKUP.search(text), MARKUP.search(text)
    assert "exit codes:" in text


def test_every_command_has_help_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """Every registered command, and every batch-evaluation subcommand, shows examples (none forgotten)."""
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(COMMANDS) <= set(commands)
    for name in COMMANDS:
        assert "examples:" in (commands[name].epilog or ""), name
    batch = commands["batch-evaluation"]._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in batch.items():
        assert "examples:" in (sub.epilog or "") and f"batch-evaluation {name}" in sub.epilog, name
        assert not MARKUP.search(sub.format_help()), name


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"eval-pipeline {version('eval-pipeline')}"


def test_quiet_output_silences_library_futures_and_dagster_api_warnings() -> None:
    from dagster_shared.utils.warnings import BetaWarning, PreviewWarning, SupersessionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configure_output(verbose=False)
        quiet_dagster_warnings()
        for category in (FutureWarning, DeprecationWarning, BetaWarning, PreviewWarning, SupersessionWarning):
            warnings.warn("library housekeeping", category, stacklevel=1)
        warnings.warn("a scorer's own warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a scorer's own warning"]


def test_child_processes_get_the_warning_filters_and_a_user_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONWARNINGS", "error::FutureWarning")
    quiet_child_processes(verbose=False)
    child = subprocess.run([sys.executable, "-c", "import warnings; warnings.warn('x', DeprecationWarning)\n"
                            "try:\n  warnings.warn('y', FutureWarning)\nexcept FutureWarning:\n  print('raised')"],
                           capture_output=True, text=True, check=True, env=dict(os.environ))
    assert child.stderr == "" and child.stdout.strip() == "raised"  # silenced; the user's own filter still applies


# --- a real run, cold (the stores migrate), in a subprocess: what a user sees ------------------------------------


def write_project(folder: Path) -> Path:
    (folder / "evals").mkdir(parents=True)
    rows = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(8)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "answers.jsonl").write_text("".join(
        json.dumps({"sample_id": row["id"], "response": row["answer"] if i % 4 else "no idea"}) + "\n"
        for i, row in enumerate(rows)))
    (folder / "evals" / "quiet.yaml").write_text("""suite: quiet
dataset: {uri: qa.jsonl}
models:
  - {name: recorded, backend: precomputed, responses: answers.jsonl}
scorers: [exact_match]
max_error_rate: 0.0
""")
    return folder


def cli(args: list[str], cwd: Path, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("EVAL_PIPELINE_", "DAGSTER_", "MLFLOW_", "PYTHONWARNINGS"))}
    environment |= {"EVAL_PIPELINE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", **env}
    return subprocess.run([str(Path(sys.executable).parent / "eval-pipeline"), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_a_cold_run_prints_results_only_and_verbose_shows_the_rest(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    quiet = cli(["run", "quiet"], project, tmp_path / "home")
    assert quiet.returncode == 0, quiet.stderr
    assert "exact_match" in quiet.stdout and "0.750" in quiet.stdout  # 6 of 8 answers right
    output = quiet.stdout + quiet.stderr
    assert [noise for noise in NOISE if noise in output] == [], output
    assert not ESCAPES.search(output), repr(output)
    assert re.search(r"Dagster run [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)", quiet.stdout)
    assert re.search(r"MLflow run: [0-9a-f]{32}$", quiet.stdout, re.MULTILINE)  # ids in full

    verbose = cli(["run", "quiet", "--verbose"], project, tmp_path / "fresh")  # a fresh state folder: migrations
    assert verbose.returncode == 0, verbose.stderr
    assert " - DEBUG - quiet_eval - " in verbose.stderr  # Dagster's event log
    assert "INFO  [alembic.runtime.migration]" in verbose.stderr
    assert "Creating initial MLflow database tables" in verbose.stderr
    assert quiet.stdout.splitlines()[-3:] != [] and "exact_match" in verbose.stdout


# --- outside a project ---------------------------------------------------------------------------------------


def test_ui_outside_a_project_says_what_is_missing_and_creates_no_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("EVAL_PIPELINE_HOME", "EVAL_PIPELINE_SUITES", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert main(["ui", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path}: not a project folder: there is no evals/ folder here" in err
    assert "set EVAL_PIPELINE_SUITES" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_list_outside_a_project_still_shows_the_state_folders_runs(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    home = tmp_path / "home"
    assert cli(["run", "quiet"], project, home).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    listed = cli(["list"], elsewhere, home)
    assert listed.returncode == 0, listed.stderr
    assert "no suites: " in listed.stderr and "not a project folder" in listed.stderr
    assert "set EVAL_PIPELINE_SUITES" in listed.stderr
    assert re.search(r"^  [0-9a-f-]{36}  quiet_eval .* SUCCESS", listed.stdout, re.MULTILINE), listed.stdout
    assert list(elsewhere.iterdir()) == []

    nothing = cli(["list"], elsewhere, tmp_path / "no-state")
    assert nothing.returncode == 2 and nothing.stdout == ""
    assert "not a project folder" in nothing.stderr and not (tmp_path / "no-state").exists()

    with_variable = cli(["list"], elsewhere, home, EVAL_PIPELINE_SUITES=str(project / "evals"))
    assert with_variable.returncode == 0 and "  quiet: qa.jsonl | models: recorded (precomputed)" in \
        with_variable.stdout


@pytest.mark.slow
def test_ui_with_the_suites_variable_runs_anywhere_quietly(tmp_path: Path) -> None:
    """Outside a project but with $EVAL_PIPELINE_SUITES: no workspace.yaml needed (one is written to the state
    folder), and the services' output has no escapes, no "use dg dev" warning and no INFO chatter."""
    from tests.dagster_live import HOST, LiveDagster, ManagedProcess, free_port, stop_groups

    project = write_project(tmp_path / "project")
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("EVAL_PIPELINE_", "DAGSTER_", "MLFLOW_", "PYTHONWARNINGS"))}
    environment |= {"EVAL_PIPELINE_HOME": str(home), "EVAL_PIPELINE_SUITES": str(project / "evals"),
                    "MLFLOW_DISABLE_TELEMETRY": "true", "NO_PROXY": HOST, "no_proxy": HOST}
    port = free_port()
    log_path = tmp_path / "ui.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen([str(Path(sys.executable).parent / "eval-pipeline"), "ui", "--host", HOST, "--port",
                                  str(port)], cwd=elsewhere, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    process = ManagedProcess("ui", popen, log_path)
    try:
        live = LiveDagster(f"http://{HOST}:{port}", home / "dagster", home, [process])
        live.wait_ready()
        assert live.partition_keys("quiet_eval") == ["recorded"]
    finally:
        stop_groups([process])
    output = log_path.read_text()
    assert (home / "workspace.yaml").is_file() and not (elsewhere / "workspace.yaml").exists()
    assert not ESCAPES.search(output), repr(output[-2000:])
    assert "dg dev" not in output and "SupersessionWarning" not in output and "Checking for new runs" not in output
