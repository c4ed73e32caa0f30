"""Progress that tells time, end to end (issue 13, item 3): ``eval-pipeline run`` of a judged suite (an
OpenAI-compatible fake answering one request at a time for the model and for the judge) writes progress lines with
rate and time left for generation AND judging to the Dagster run log, the same lines once each on stderr without
terminal escapes, and judging's lines arrive while it runs (several increasing counts before its step ends); the
SDK's ``wait()`` shows the running step's progress lines from the run log, and nothing is printed twice."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval_pipeline import cli
from eval_pipeline.instance import local_instance
from eval_pipeline.progress import is_progress_line
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

N = 24
GEN, JUDGE = "gen-served", "judge-served"
BEDROCK_MODEL, BEDROCK_JUDGE = "amazon.nova-micro-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
LINE = re.compile(r"^(?P<desc>.+?): (?:done )?(?P<done>\d+)/(?P<total>\d+)(?: \((?P<pct>\d+)%\))?(?P<rest>.*)$")
ESCAPES = re.compile(r"\r|\x1b\[")


def respond(prompt: str) -> str:
    i = int(prompt.split()[2])
    return f"{2 * i}!" if i % 3 else "I am not sure."


def correct(fields: dict[str, str], prompt: str) -> str:
    return "Correct" if fields["ground_truth"] in fields["prediction"] else "Incorrect"


@pytest.fixture
def server(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    router = ModelRouter({GEN: respond, JUDGE: scripted_judge(correct), BEDROCK_MODEL: respond,
                          BEDROCK_JUDGE: scripted_judge(correct)})
    with FakeLLMServer(answer=router, known_models=set(router.responders), latency_s=0.03) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
        monkeypatch.delenv("EVAL_PIPELINE_DAGSTER_URL", raising=False)
        yield fake


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "qa.jsonl"
    rows = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "referenceResponse": str(2 * i)} for i in range(N)]
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return dataset


def parse(line: str) -> dict[str, object]:
    match = LINE.match(line)
    assert match, line
    parts = match.group("rest").split(" · ")[1:]
    return {"desc": match.group("desc"), "done": int(match.group("done")), "total": int(match.group("total")),
            "final": " done " in f" {line.split(': ', 1)[1]}", "parts": parts}


def seconds(text: str) -> int:
    """``1m05s`` → 65 (the reference reading of the time-left field)."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))


def check_rates(lines: list[str]) -> None:
    """Every line between the first and the last has a rate and a time left that agree: left ≈ (total−done)/rate."""
    for line in lines[1:-1]:
        parsed = parse(line)
        rate_part = next(p for p in parsed["parts"] if p.endswith("/s"))  # type: ignore[union-attr]
        left_part = next(p for p in parsed["parts"] if p.endswith(" left"))  # type: ignore[union-attr]
        value, unit = rate_part.split(" ")
        rate = float(value) if unit.endswith("req/s") else 1 / float(value)  # "4.0 s/req" is a time per request
        expected = (int(parsed["total"]) - int(parsed["done"])) / rate  # type: ignore[call-overload]
        assert abs(seconds(left_part.removesuffix(" left")) - expected) <= max(1.0, 0.06 * expected), line


@pytest.mark.slow
def test_progress_in_the_run_log_the_terminal_and_wait(eval_home: Path, server: FakeLLMServer,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """One state folder for both parts (a cold start is most of the cost): the CLI's run, then the SDK's."""
    dataset = write_dataset(eval_home.parent / "p")
    served = f"backend: openai, base_url: '{server.url}/v1', n_concurrent: 1"
    suite = dataset.parent / "timed.yaml"
    suite.write_text(f"""suite: timed
dataset: {{uri: qa.jsonl}}
models:
  - {{name: m, {served}, model: {GEN}}}
generation: {{max_tokens: 16}}
scorers: [contains]
judge:
  model: {{{served}, model: {JUDGE}}}
  builtin_metrics: [Correctness]
""")
    assert cli.main(["run", str(suite)]) == 0
    err = capsys.readouterr().err

    instance = local_instance()
    (run,) = instance.get_runs()  # the suite has no baseline: one run
    entries = instance.all_logs(run.run_id)
    messages = [e.user_message for e in entries if e.dagster_event is None]
    stages = {"generation": "timed/m generation", "judging": "timed/m judging"}
    for stage, description in stages.items():
        lines = [m for m in messages if m.startswith(f"{description}: ")]
        assert all(is_progress_line(line) for line in lines)
        counts = [parse(line)["done"] for line in lines]
        assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == N, (stage, lines)
        assert len([c for c in counts if 0 < c < N]) >= 5, (stage, lines)  # every 5% (2 of 24), not one jump
        assert parse(lines[-1])["final"] and lines[-1].endswith("req/s") and " in " in lines[-1]
        assert all(" left" in line and "/s" in line for line in lines[1:-1])
        check_rates(lines)
        for line in lines:  # the terminal: the same lines, each once, as plain text
            assert err.count(line + "\n") == 1, line

    # judging reports while it runs: its intermediate lines come before its step ends
    order = [(e.user_message if e.dagster_event is None else e.dagster_event.event_type_value, e.step_key)
             for e in entries]
    judged_done = next(i for i, (kind, step) in enumerate(order) if kind == "STEP_SUCCESS" and "judgments" in step)
    intermediate = [i for i, (kind, _) in enumerate(order)
                    if kind.startswith("timed/m judging: ") and 0 < parse(kind)["done"] < N]  # type: ignore[operator]
    assert intermediate and max(intermediate) < judged_done
    assert not ESCAPES.search(err)
    assert "[0m" not in err and "DEBUG" not in err

    # the SDK: wait() shows the running step's latest progress line from the run log
    from eval_pipeline.sdk import LLMAsJudgeEvaluator

    dataset = write_dataset(eval_home.parent / "sdk")
    execution = LLMAsJudgeEvaluator(model=BEDROCK_MODEL, evaluator_model=BEDROCK_JUDGE, dataset=str(dataset),
                                    builtin_metrics=["Correctness"], evaluate_base_model=False,
                                    name="progress_wait").evaluate()
    status = execution.wait(poll=0.1, timeout=180)
    assert status.overall_status == "Succeeded"
    captured = capsys.readouterr()
    shown = [line.strip() for line in captured.out.splitlines() if line.startswith("  ")]
    assert shown and all(is_progress_line(line) for line in shown)
    assert len(shown) == len(set(shown))  # a line only when it changed
    with_rate = [line for line in shown if " left" in line and "/s" in line]
    assert with_rate, shown  # the running step's count, rate and time left
    assert any(" generation: " in line for line in shown) and any(" judging: " in line for line in shown)
    assert not any(is_progress_line(line) for line in captured.err.splitlines())  # not printed twice
