"""``eval-pipeline run --dry-run`` counts the judge's requests (per model: to make, in the judge cache, to send, and
an upper bound on their cost at the judge's price) and never counts a precomputed model's answers as requests to
send. The counts are checked against the fake services' request logs and the judgments table of a real run."""

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.cli import main
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

N = 6
QUESTIONS = {f"What is {i} plus {i}?": str(2 * i) for i in range(N)}
MODEL, JUDGE = "amazon.nova-micro-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
METRICS = ("Correctness", "Harmfulness")
JUDGE_MAX_TOKENS = 64
PRICE_IN, PRICE_OUT = 3.0, 15.0  # the judge's dollars per million tokens
MISSING = "q5"  # the precomputed file has no answer for it: an error row, nothing for the judge


def respond(prompt: str) -> str:
    return f"{2 * int(prompt.split()[2])}"


@pytest.fixture
def fake(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    judge = scripted_judge(lambda fields, prompt: "Correct" if "Partially correct" in prompt else "No")
    router = ModelRouter({MODEL: respond, JUDGE: judge})
    with FakeLLMServer(answer=router, known_models=set(router.responders)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server


def write_project(folder: Path) -> Path:
    (folder / "evals").mkdir(parents=True)
    rows = [{"id": f"q{i}", "prompt": question, "answer": reference}
            for i, (question, reference) in enumerate(QUESTIONS.items())]
    (folder / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_answers(folder, {row["id"]: f"It is {row['answer']}." for row in rows if row["id"] != MISSING})
    path = folder / "evals" / "judged.yaml"
    path.write_text(f"""suite: judged
dataset: {{uri: qa.jsonl}}
models:
  - {{name: generated, backend: bedrock, model: {MODEL}}}
  - {{name: recorded, backend: precomputed, responses: answers.jsonl}}
generation: {{max_tokens: 16}}
scorers: [contains]
judge:
  model: {{backend: bedrock, model: {JUDGE}, price: {{input_per_1m: {PRICE_IN}, output_per_1m: {PRICE_OUT}}}}}
  builtin_metrics: [{", ".join(METRICS)}]
  max_tokens: {JUDGE_MAX_TOKENS}
max_error_rate: 1.0
""")
    return path


def write_answers(folder: Path, answers: dict[str, str]) -> None:
    (folder / "answers.jsonl").write_text("".join(json.dumps({"sample_id": key, "response": value}) + "\n"
                                                  for key, value in answers.items()))


def dry_run(suite: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["run", str(suite), "--dry-run", "--json"]) == 0
    return {plan["model"]: plan for plan in json.loads(capsys.readouterr().out)["plans"]}


def judged_rows(path: str) -> int:
    """Judgments a run made with a judge request (a failed answer's row has none)."""
    return int(pd.read_parquet(path)["judge_request_hash"].notna().sum())


def test_dry_run_counts_the_judge_and_sends_nothing_for_precomputed_answers(
        eval_home: Path, fake: FakeLLMServer, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_project(eval_home.parent / "p")

    plans = dry_run(suite, capsys)
    recorded, generated = plans["recorded"], plans["generated"]
    # a precomputed model: every item is a request answered from its file, none is sent
    assert (recorded["requests"], recorded["cached"], recorded["to_send"]) == (N, 0, 0)
    assert recorded["max_tokens_out"] == 0 and "answers read from" in recorded["note"]
    # its answers are known, so its judge requests are exact: one per answer × metric (the missing answer has none)
    judge = recorded["judge"]
    answered = N - 1
    assert (judge["requests"], judge["cached"], judge["to_send"]) == (answered * 2, 0, answered * 2)
    assert judge["answers_unknown"] == 0 and judge["metrics"] == len(METRICS) and judge["judge"] == f"bedrock:{JUDGE}"
    assert judge["max_tokens_out"] == answered * 2 * JUDGE_MAX_TOKENS
    assert judge["est_tokens_in"] > 0
    assert judge["est_cost_usd"] == pytest.approx(
        (judge["est_tokens_in"] * PRICE_IN + judge["max_tokens_out"] * PRICE_OUT) / 1e6)
    # a generating model's answers are not known yet: its judge requests are all counted as to send
    assert (generated["requests"], generated["cached"], generated["to_send"]) == (N, 0, N)
    assert generated["judge"]["answers_unknown"] == N
    assert (generated["judge"]["requests"], generated["judge"]["to_send"]) == (N * 2, N * 2)
    assert "not generated yet" in generated["judge"]["note"]
    assert fake.requests_total == 0

    capsys.readouterr()
    assert main(["run", str(suite), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"judge bedrock:{JUDGE}: 2 metrics, one request per answer × metric" in text
    assert "answers read from" in text and "not generated yet" in text

    assert main(["run", str(suite), "--json"]) == 0
    outputs = json.loads(capsys.readouterr().out)["outputs"]
    sent = fake.requests_total
    assert sent > 0

    plans = dry_run(suite, capsys)
    for model in ("recorded", "generated"):
        judge = plans[model]["judge"]
        made = judged_rows(outputs[model]["judgments"])  # the run's own record of its judge requests
        assert (judge["requests"], judge["cached"], judge["to_send"]) == (made, made, 0), model
        assert judge["answers_unknown"] == 0 and judge["est_tokens_in"] == 0 and judge["est_cost_usd"] == 0.0
    assert (plans["generated"]["cached"], plans["generated"]["to_send"]) == (N, 0)
    assert judged_rows(outputs["generated"]["judgments"]) == N * 2

    # a changed answer is a new judge request per metric; the other answers' stay cached
    answers = {f"q{i}": f"It is {2 * i}." for i in range(N) if f"q{i}" != MISSING}
    answers["q0"] = "It is zero."
    write_answers(suite.parent.parent, answers)
    judge = dry_run(suite, capsys)["recorded"]["judge"]
    assert (judge["requests"], judge["cached"], judge["to_send"]) == (answered * 2, answered * 2 - 2, 2)
    assert fake.requests_total == sent  # no dry run sent anything


def test_dry_run_looks_likelihood_verdicts_up_in_the_judge_cache(
        eval_home: Path, tiny_model_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A small local judge reading verdicts by likelihood (the embedded default): a judgment is cached when every
    rating level's score is; the dry run keys them as judging does."""
    folder = eval_home.parent / "p"
    suite = write_project(folder)
    suite.write_text(f"""suite: judged
dataset: {{uri: qa.jsonl}}
models:
  - {{name: recorded, backend: precomputed, responses: answers.jsonl}}
scorers: [contains]
judge:
  model: {{backend: local, model: {tiny_model_dir}}}
  builtin_metrics: [{", ".join(METRICS)}]
  verdict: likelihood
max_error_rate: 1.0
""")
    answered = N - 1
    judge = dry_run(suite, capsys)["recorded"]["judge"]
    assert (judge["requests"], judge["cached"], judge["to_send"]) == (answered * 2, 0, answered * 2)
    assert judge["cache_checked"] and judge["max_tokens_out"] == 0 and judge["note"] == ""

    assert main(["run", str(suite), "--json"]) == 0
    judgments = pd.read_parquet(json.loads(capsys.readouterr().out)["outputs"]["recorded"]["judgments"])
    made = int(judgments["error"].isna().sum())  # the run's judgments with a verdict (the missing answer has none)
    assert made == answered * 2
    judge = dry_run(suite, capsys)["recorded"]["judge"]
    assert (judge["requests"], judge["cached"], judge["to_send"]) == (made, made, 0)
