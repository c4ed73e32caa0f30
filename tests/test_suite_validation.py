"""A suite is validated whole when it loads: names (scorers, judge metrics), ranges (num_samples, pass@k,
temperature per backend, success_threshold), duplicate keys and the schedule's cron; each error names the file,
the line and the field."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import dagster as dg
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites import Suite, check_suite, load_suite
from eval_pipeline.suites.cron import cron_problem
from eval_pipeline.suites.spec import BACKENDS, TEMPERATURE_RANGES

MINIMAL = """\
suite: demo
dataset: {uri: data/qa.jsonl}
models:
  - {name: m1, backend: precomputed, responses: data/r.jsonl}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / "evals" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> EvalInputError:
    path = write(tmp_path, text)
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert caught.value.file == str(path), caught.value
    return caught.value


def line_of(text: str, needle: str) -> int:
    """The 1-based line holding ``needle`` (computed independently of the loader)."""
    return next(number for number, line in enumerate(text.split("\n"), start=1) if needle in line)


# ---- names: scorers and judge metrics ------------------------------------------------------------------------------

def test_misspelled_scorer_is_refused_at_load_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL + "scorers:\n  - exact_match\n  - exact_mtch\n"
    error = refused(tmp_path, text)
    assert error.line == line_of(text, "exact_mtch") and error.field == "scorers.1.name"
    assert "unknown scorer 'exact_mtch'" in str(error) and "did you mean 'exact_match'" in str(error)


def test_misspelled_scorer_type_and_bad_pattern(tmp_path: Path) -> None:
    text = MINIMAL + "scorers:\n  - {name: num, type: regex_mach, pattern: 'x'}\n"
    error = refused(tmp_path, text)
    assert error.field == "scorers.0.type" and error.line == line_of(text, "regex_mach")
    text = MINIMAL + "scorers:\n  - name: num\n    type: regex_match\n    pattern: '(unclosed'\n"
    error = refused(tmp_path, text)
    assert error.field == "scorers.0.pattern" and error.line == line_of(text, "pattern:")
    assert "bad regular expression" in str(error)


def test_misspelled_judge_metric_is_refused_at_load(tmp_path: Path) -> None:
    text = MINIMAL + "judge:\n  builtin_metrics:\n    - Correctness\n    - Completness\n"
    error = refused(tmp_path, text)
    assert error.line == line_of(text, "Completness") and error.field == "judge.builtin_metrics.1"
    assert "Did you mean 'Completeness'" in str(error)


def test_bad_inline_custom_metric_is_located(tmp_path: Path) -> None:
    text = MINIMAL + ("judge:\n  custom_metrics:\n    - customMetricDefinition:\n        name: Tone\n"
                      "        instructions: 'Rate {{prediction}}'\n        ratingScale: []\n")
    error = refused(tmp_path, text)
    assert error.field is not None and error.field.startswith("judge.custom_metrics.0")
    assert error.line is not None and error.line >= line_of(text, "customMetricDefinition")


def test_valid_suites_in_the_repository_still_load() -> None:
    repo = Path(__file__).resolve().parent.parent
    for path in sorted((repo / "evals").glob("*.yaml")):
        load_suite(path)


# ---- numbers ---------------------------------------------------------------------------------------------------------

def test_huge_num_samples_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "generation:\n  temperature: 0.5\n  num_samples: 100000000\n"
    error = refused(tmp_path, text)
    assert error.field == "generation.num_samples" and error.line == line_of(text, "num_samples")
    assert "less than or equal to 1000" in str(error)


@pytest.mark.parametrize("k", [0, -1])
def test_pass_k_below_one_is_refused(tmp_path: Path, k: int) -> None:
    text = MINIMAL + f"generation: {{num_samples: 3}}\npass_k:\n  - 1\n  - {k}\n"
    error = refused(tmp_path, text)
    assert error.field == "pass_k.1" and error.line == line_of(text, f"  - {k}")


def test_pass_k_above_num_samples_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "generation: {num_samples: 3}\npass_k: [1, 5]\n"
    error = refused(tmp_path, text)
    assert error.field == "pass_k.1" and error.line == line_of(text, "pass_k")
    assert "pass@5 needs at least 5 samples" in str(error)
    load_suite(write(tmp_path, MINIMAL + "generation: {num_samples: 5}\npass_k: [1, 5]\n"))


@pytest.mark.parametrize("value", [".nan", "nan", ".inf", "-.inf", "NaN"])
def test_non_finite_success_threshold_is_refused(tmp_path: Path, value: str) -> None:
    text = MINIMAL + f"success_threshold: {value}\n"
    error = refused(tmp_path, text)
    assert error.field == "success_threshold" and error.line == line_of(text, "success_threshold")


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_success_threshold_is_refused_below_suites(tmp_path: Path, value: float) -> None:
    """Callers that build no suite (the scores table, the training-loop Benchmark) refuse it too."""
    import pandas as pd

    from eval_pipeline.evaluations.benchmark import Benchmark
    from eval_pipeline.metrics.passk_table import task_counts

    scores = pd.DataFrame({"model": ["m"], "scorer": ["exact_match"], "sample_id": ["a"], "score": [1.0],
                           "error": [None]})
    with pytest.raises(ValueError, match="finite"):
        task_counts(scores, value)
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text('{"prompt": "2+2?", "answer": "4"}\n')
    with pytest.raises(EvalInputError, match="finite"):
        Benchmark(dataset=dataset, success_threshold=value)


def test_finite_success_threshold_loads(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, MINIMAL + "success_threshold: 0.5\n"))
    assert suite.success_threshold == 0.5 and math.isfinite(suite.success_threshold)


# ---- temperature: a per-backend range ------------------------------------------------------------------------------

def test_every_backend_declares_its_temperature_range() -> None:
    assert set(TEMPERATURE_RANGES) == set(BACKENDS)
    assert TEMPERATURE_RANGES["bedrock"] == (0.0, 1.0) and TEMPERATURE_RANGES["openai"] == (0.0, 2.0)


BEDROCK = """\
suite: demo
dataset: {uri: data/qa.jsonl}
models:
  - {name: m1, backend: precomputed, responses: data/r.jsonl}
  - {name: nova, backend: bedrock, model: amazon.nova-micro-v1:0}
  - {name: served, backend: openai, base_url: 'http://127.0.0.1:1/v1', model: x}
"""


def test_temperature_outside_a_backends_range_is_refused(tmp_path: Path) -> None:
    text = BEDROCK + "generation:\n  max_tokens: 8\n  temperature: 1.5\n"
    error = refused(tmp_path, text)
    assert error.field == "generation.temperature" and error.line == line_of(text, "temperature")
    assert "bedrock backend's range (0 to 1)" in str(error) and "'nova'" in str(error)
    text = BEDROCK.replace("  - {name: nova, backend: bedrock, model: amazon.nova-micro-v1:0}\n", "")
    load_suite(write(tmp_path, text + "generation: {temperature: 1.5}\n"))  # openai goes to 2
    assert "openai backend's range (0 to 2)" in str(refused(tmp_path, text + "generation: {temperature: 2.5}\n"))
    load_suite(write(tmp_path, MINIMAL + "generation: {temperature: 7}\n"))  # precomputed: no limit


def test_negative_or_infinite_temperature_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, MINIMAL + "generation: {temperature: -0.1}\n").field == "generation.temperature"
    assert refused(tmp_path, MINIMAL + "generation: {temperature: .inf}\n").field == "generation.temperature"


# ---- duplicate keys ------------------------------------------------------------------------------------------------

def test_duplicate_top_level_key_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "scorers: [f1]\nschedule: null\nscorers: [exact_match]\n"
    error = refused(tmp_path, text)
    assert error.line == text.split("\n").index("scorers: [exact_match]") + 1
    assert "duplicate key 'scorers'" in str(error) and f"first on line {line_of(text, 'scorers: [f1]')}" in str(error)


def test_duplicate_nested_and_flow_keys_are_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, MINIMAL + "generation:\n  temperature: 0.1\n  max_tokens: 5\n  temperature: 0.2\n")
    assert "duplicate key 'temperature'" in str(error) and error.line == 8
    error = refused(tmp_path, MINIMAL.replace("responses: data/r.jsonl}", "responses: a, responses: b}"))
    assert "duplicate key 'responses'" in str(error) and error.line == 4


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = MINIMAL.replace("  - {name: m1,", "  - &base {name: m1,") + \
        "  - {<<: *base, name: m2, responses: data/other.jsonl}\n"
    suite = load_suite(write(tmp_path, text))
    assert [(m.name, m.responses) for m in suite.models] == [("m1", "data/r.jsonl"), ("m2", "data/other.jsonl")]


# ---- schedule ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cron", ["61 * * * *", "0 2 * *", "@dayly", "0 0 30 2 *", "0 25 * * *", "* * * * * *",
                                  "0 0 * * MON-XYZ", "*/0 * * * *"])
def test_invalid_cron_is_refused(tmp_path: Path, cron: str) -> None:
    text = MINIMAL + f'schedule: "{cron}"\n'
    error = refused(tmp_path, text)
    assert error.field == "schedule" and error.line == line_of(text, "schedule") and "cron" in str(error)


VALID_CRONS = ["0 2 * * *", "*/15 * * * *", "0 9-17/2 * * 1-5", "30 4 1,15 * *", "0 0 * * sun", "0 0 1 jan *",
               "@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@annually", "@midnight", "0 0 29 2 *",
               "0 12 * * 0,7", "5/10 * * * *", "5-1 * * * *", "0 0 * * sat-mon", "0 0 * dec-jan *", "0 0 L * *",
               "0 0 * * 1#2", "0 0 ? * *", "0 0 * * MON-FRI", "5-1/2 * * * *"]
INVALID_CRONS = ["61 * * * *", "0 2 * *", "@dayly", "0 0 30 2 *", "0 25 * * *", "* * * * * *", "0 0 * * MON-XYZ",
                 "*/0 * * * *", "", "0 0 32 * *", "0 0 0 * *", "0 0 * 13 *", "0 0 * * 8", "a b c d e", "0 0 1W * *",
                 "@reboot", "1,2,,3 * * * *", "0 0 1-5/0 * *", "H * * * *", "0 0 * * 5L"]


def test_cron_checker_agrees_with_dagster() -> None:
    from dagster._utils.schedules import is_valid_cron_string

    for cron in VALID_CRONS:
        assert cron_problem(cron) is None, cron
        assert is_valid_cron_string(cron), cron
    for cron in INVALID_CRONS:
        assert cron_problem(cron) is not None, cron
        assert not is_valid_cron_string(cron), cron
    never = "0 0 30,31 2 *"  # Dagster accepts it, but it never fires: refused here
    assert is_valid_cron_string(never) and "February" in (cron_problem(never) or "")


def test_valid_cron_loads(tmp_path: Path) -> None:
    for cron in VALID_CRONS:
        assert load_suite(write(tmp_path, MINIMAL + f'schedule: "{cron}"\n')).schedule == cron


# ---- every entry point: the code location and suites built in Python --------------------------------------------

def test_code_location_refuses_a_suite_with_a_misspelled_scorer(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster shows an exception raised while loading the code location as the location's error: the message
    names the suite file and line, and no run of that suite can be launched from the UI, a sensor or a schedule."""
    text = MINIMAL + "scorers: [exact_match, f1_scor]\n"
    path = write(tmp_path, text)
    monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(path.parent))
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(tmp_path / "home"))
    with pytest.raises(EvalInputError) as caught:
        load_code_location()
    assert f"{path}:{line_of(text, 'f1_scor')}:" in str(caught.value) and "unknown scorer 'f1_scor'" in str(
        caught.value)
    path.write_text(MINIMAL + "scorers: [exact_match, f1]\n")
    jobs = {job.name for job in load_code_location().defs.resolve_all_job_defs()}
    assert "demo_eval" in jobs


def load_code_location() -> ModuleType:
    """(Re)import the code location module, as ``dagster dev`` does when it loads or reloads the location."""
    name = "eval_pipeline.definitions"
    return importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)


def test_build_definitions_checks_a_suite_built_in_python(tmp_path: Path) -> None:
    from eval_pipeline.suite_definitions import build_definitions

    suite = Suite.model_validate({"suite": "py", "dataset": {"uri": "x.jsonl"}, "scorers": ["exact_match", "blue"],
                                  "models": [{"name": "m", "backend": "precomputed"}], "schedule": None})
    with pytest.raises(EvalInputError, match="unknown scorer 'blue'"):
        check_suite(suite)
    with pytest.raises(EvalInputError, match="unknown scorer 'blue'"):
        build_definitions([suite], resources={"io_manager": dg.mem_io_manager})
