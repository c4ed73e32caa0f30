"""The training-loop evaluator's harbor engine against the same Harbor tasks run as a rollout suite.

Four task folders (``tests/fixtures/harbor/benchmark``): the fake OpenAI-compatible server (tests/fakes) is scripted
to solve two (a ``write_file`` call, a ``python`` call whose file the workspace keeps), to get one wrong, and the
fourth task's verifier dies before it writes a reward (error rows, never 0). The evaluator's metric dict equals the
suite's METRICS table (``run_suite`` on a fresh state folder) and a computation by hand from the per-trial rewards.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from eval_pipeline.evaluations import Benchmark, BenchmarkEvaluator
from eval_pipeline.execution import run_suite
from eval_pipeline.inference.openai_compat import OpenAISampler
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from tests.fakes import FakeLLMServer

HARBOR = Path(__file__).resolve().parent / "fixtures" / "harbor"
BENCHMARK = HARBOR / "benchmark"
SUITE = HARBOR / "evals" / "harbor_mini.yaml"


def instruction(task: str) -> str:
    return (BENCHMARK / task / "instruction.md").read_text().strip()


CALLS = {
    instruction("hello-file"): [{"name": "write_file", "arguments": {"path": "hello.txt", "content": "Hello, world!"}}],
    instruction("count-lines"): [{"name": "python", "arguments": {"code": (
        "n = len(open('data.txt').read().splitlines())\nopen('count.txt', 'w').write(str(n))\nprint(n)")}}],
    instruction("fix-add"): [{"name": "python", "arguments": {"code": (
        "open('calc.py', 'w').write('def add(a, b):\\n    return a * b\\n')")}}],  # wrong: 2 * 3 != 5
    instruction("crashing-verifier"): [{"name": "write_file", "arguments": {"path": "status.txt", "content": "done"}}],
}
SOLVED = {"hello-file": 1.0, "count-lines": 1.0, "fix-add": 0.0}


class FailingStore:
    """A dashboard that is down: every upload raises."""

    def __init__(self) -> None:
        self.calls = 0

    def log(self, record: Any) -> None:
        self.calls += 1
        raise ConnectionError("dashboard unreachable")


def by_hand(rollouts: pd.DataFrame, k: int) -> dict[str, float]:
    """pass@k, pass^k, mean reward and avg from the per-trial rewards (error trials excluded), in exact integers."""
    valid = rollouts[rollouts["error"].isna()]
    groups = [(len(g), int((g["reward"] >= 1.0).sum()), float(g["reward"].mean()))
              for _, g in valid.groupby("sample_id")]
    return {f"pass@{k}": float(np.mean([1 - math.comb(n - c, k) / math.comb(n, k) for n, c, _ in groups])),
            f"pass^{k}": float(np.mean([math.comb(c, k) / math.comb(n, k) for n, c, _ in groups])),
            "mean_reward": float(np.mean([r for _, _, r in groups])), "avg": float(valid["reward"].mean())}


@pytest.mark.slow  # a Dagster run and a fresh MLflow store: ~10 s on an idle machine
def test_harbor_engine_equals_the_suite_and_a_hand_computation(eval_home: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    workspaces = tmp_path / "workspaces"
    store = FailingStore()
    loop = BenchmarkEvaluator(
        name="harbor_mini", benchmark=Benchmark(dataset=BENCHMARK), engine="harbor",
        metrics=["pass@1", "pass@2", "pass^2", "avg", "mean_reward", "pass_rate"], num_samples=2, n_concurrent=4,
        max_tokens=64, temperature=0.0, max_turns=3, workspace_dir=workspaces, store=store, run_id="training-run",
        breakdown_keys=["category"])
    with FakeLLMServer(answer=lambda prompt, model: "Done.", tool_calls=CALLS, known_models={"served-model"},
                       latency_s=0.1) as fake:
        sampler = OpenAISampler(f"{fake.url}/v1", "served-model")
        with caplog.at_level(logging.WARNING, logger="eval_pipeline.evaluations"):
            values = loop.evaluate(sampler, model_path="ckpt/step-100", step=100)
        # one sampling client for every trial, with trials in flight together (at most n_concurrent)
        assert fake.requests_total == 4 * 2 * 2  # two model turns per trial
        assert sampler.n_concurrent == 4 and 2 <= fake.max_in_flight <= 4
        run = loop.last_run
        assert run is not None
        rollouts = run.rollouts

        # each trial: the verifier's reward; the crashing verifier's trials are error rows with the reason
        assert len(rollouts) == 8 and sorted(rollouts["sample_index"].unique()) == [0, 1]
        crashed = rollouts[rollouts["sample_id"] == "crashing-verifier"]
        assert crashed["reward"].isna().all() and (crashed["error_source"] == "environment").all()
        assert crashed["error"].str.contains("no reward file").all()
        assert crashed["error"].str.contains("exited with status 3").all()
        for task, reward in SOLVED.items():
            assert rollouts.loc[rollouts["sample_id"] == task, "reward"].tolist() == [reward, reward], task
        assert rollouts.loc[rollouts["error"].isna(), "termination"].eq("done").all()

        # the metric dict: an independent computation from the per-trial rewards
        hand = by_hand(rollouts, 1) | by_hand(rollouts, 2)
        for name in ("pass@1", "pass@2", "pass^2", "avg", "mean_reward"):
            assert values[name] == pytest.approx(hand[name], abs=1e-12), name
        assert values["pass@1"] == pytest.approx(2 / 3) and values["pass_rate"] == pytest.approx(2 / 3)
        assert values["pass@2/category=files"] == 1.0 and values["pass@2/category=code"] == 0.0

        # workspace_dir holds one workspace per trial, with what the agent wrote (the python tool's file kept)
        trials = sorted(p.name.rsplit("-", 1)[0] for p in workspaces.iterdir())
        assert trials == sorted(["count-lines", "crashing-verifier", "fix-add", "hello-file"] * 2)
        for folder in workspaces.glob("count-lines-*"):
            assert (folder / "count.txt").read_text() == "4" and (folder / "data.txt").is_file()
        for folder in workspaces.glob("fix-add-*"):
            assert "a * b" in (folder / "calc.py").read_text()

        # the upload failed: logged and kept, never raised
        assert store.calls == 1 and run.upload_error == "ConnectionError: dashboard unreachable"
        assert "uploading the evaluation at step 100 failed" in caplog.text

        # the same tasks as a rollout suite through the pipeline (a fresh state folder)
        monkeypatch.setenv("FAKE_LLM_URL", fake.url)
        result = run_suite(load_suite(SUITE), local_instance())
        assert result.success, result.models[0].error
        [model] = result.models
        suite_rollouts = pd.read_parquet(model.outputs["rollouts"])

    key = ["sample_id", "sample_index"]
    mine = rollouts.sort_values(key)[[*key, "reward", "success"]].reset_index(drop=True)
    theirs = suite_rollouts.sort_values(key)[[*key, "reward", "success"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    table = model.metrics[model.metrics["breakdown_key"].isna()]
    suite_values = dict(zip(table["metric"], table["value"].astype(float), strict=True))
    for name in ("pass@1", "pass@2", "pass^2", "mean_reward"):
        assert values[name] == pytest.approx(suite_values[name], abs=1e-12), name
    assert suite_values["errors.environment"] == 2


def test_harbor_engine_uploads_the_trials_to_a_folder(tmp_path: Path) -> None:
    calls = {instruction("hello-file"): CALLS[instruction("hello-file")]}
    loop = BenchmarkEvaluator(name="harbor_upload", benchmark=Benchmark(dataset=BENCHMARK / "hello-file"),
                              engine="harbor", num_samples=3, n_concurrent=2, store=tmp_path / "store",
                              run_id="training-run")
    with FakeLLMServer(answer=lambda prompt, model: "Done.", tool_calls=calls, known_models={"m"}) as fake:
        values = loop.evaluate(OpenAISampler(f"{fake.url}/v1", "m"), step=7)
    assert values == {"mean_reward": 1.0, "pass_rate": 1.0}
    assert loop.last_run is not None and loop.last_run.uploaded_to is not None
    items = pd.read_parquet(loop.last_run.uploaded_to)
    assert len(items) == 3 and (items["reward"] == 1.0).all() and (items["step"] == 7).all()
    saved = json.loads(Path(loop.last_run.uploaded_to.replace(".parquet", ".metrics.json")).read_text())
    assert saved["metrics"] == values and saved["step"] == 7


THINKING_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}"
    "{% if enable_thinking is defined and enable_thinking %}<think>{% endif %}{% endif %}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", max_positions=4096)


def test_enable_thinking_and_the_tokenizer_reach_the_local_chat_template(tiny: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from eval_pipeline.evaluations.chat_prompts import template_sampler
    from eval_pipeline.inference.local import LocalSampler
    from eval_pipeline.inference.tool_text import render_prompt

    thinking_tokenizer = AutoTokenizer.from_pretrained(tiny)
    thinking_tokenizer.chat_template = THINKING_TEMPLATE
    messages = [{"role": "user", "content": "Count the lines."}]

    def harbor_loop(tokenizer: Any, thinking: bool | None) -> BenchmarkEvaluator:
        template = {} if thinking is None else {"enable_thinking": thinking}
        return BenchmarkEvaluator(name="think", benchmark=Benchmark(dataset=BENCHMARK / "count-lines"),
                                  engine="harbor", tokenizer=tokenizer, chat_template=template, max_tokens=4,
                                  max_turns=1, workspace_dir=tmp_path / "ws")

    rendered, tokens_in = {}, {}
    for thinking in (True, False, None):
        loop = harbor_loop(thinking_tokenizer, thinking)
        values = loop.evaluate_harbor(tiny, step=1)
        assert loop.last_run is not None
        [row] = loop.last_run.rollouts.itertuples()
        assert row.error is None and values["mean_reward"] == 0.0  # the random model does not solve it
        sampler = loop._samplers[("checkpoint", tiny)]
        rendered[thinking] = render_prompt(sampler.tokenizer, messages)[0]
        tokens_in[thinking] = row.tokens_in
    assert loop.evaluate_harbor(tiny, step=2) == values and loop._samplers[("checkpoint", tiny)] is sampler
    assert rendered[True].endswith("<|assistant|><think>")
    assert rendered[False].endswith("<|assistant|>") and rendered[None] == rendered[False]
    assert tokens_in[True] > tokens_in[False] == tokens_in[None]

    # without a tokenizer, the checkpoint's own template renders (it has no enable_thinking)
    own = template_sampler(tiny, None, {"enable_thinking": True})
    assert "<think>" not in render_prompt(own.tokenizer, messages)[0]

    # the sampler path: a local sampler handed to the evaluator renders enable_thinking too, through a sampler
    # over the same loaded model, kept for the next evaluation; the caller's sampler is left as it was
    local = LocalSampler.from_loaded(LocalSampler(tiny).model, thinking_tokenizer, name="live", revision="r1")
    live = harbor_loop(None, True)
    wrapped = live._configure(local)
    assert wrapped is not local and live._configure(local) is wrapped and wrapped.model is local.model
    assert render_prompt(wrapped.tokenizer, messages)[0].endswith("<think>")
    assert "<think>" not in render_prompt(local.tokenizer, messages)[0]
    assert wrapped.identity() != local.identity()  # cached answers of one are never served for the other
