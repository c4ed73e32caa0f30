"""Three hand-written lm-eval task YAMLs with local data (tests/lm_eval_tasks: multiple choice with few-shot examples,
generate_until with a regex filter, loglikelihood_rolling) run by lm-eval 0.4.13 itself, in its own environment
(scripts/lm_eval_env.sh makes .venv-lmeval; lm-eval never enters .venv), and by a suite of each on the tiny model:
the same metrics to float precision and the same per-item requests (contexts and continuations, rendered prompts,
texts), answers, filtered answers and log-likelihoods. A 64-token window on both sides exercises lm-eval's left cut
of long contexts, its budget for generation prompts and its rolling windows. Both of lm-eval 0.4.13's BOS settings
are compared, in one lm-eval process: its default (a BOS before every context; our ``add_bos_token: true``) and
``add_bos_token=False`` (our default)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.lm_eval_tasks.task_yaml import LmEvalTask, load_task_yaml
from eval_pipeline.suites import load_suite

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("tiny_mc", "tiny_gen", "tiny_ppl")
MAX_LENGTH = 64

pytestmark = pytest.mark.slow


def lm_eval_python() -> str:
    """The lm-eval environment's Python, made on first use (quick and idempotent afterwards)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "lm_eval_env.sh")], check=True, cwd=ROOT)
    return str(ROOT / ".venv-lmeval" / "bin" / "python")


def start_lm_eval(folder: Path, model_dir: str, out: Path) -> subprocess.Popen[bytes]:
    """lm-eval on the three tasks, with its default and with ``add_bos_token=False``, in one process."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_CACHE": str(folder.parent / "hf-datasets"), "HF_HOME": str(folder.parent / "hf-home")}
    return subprocess.Popen([lm_eval_python(), str(ROOT / "tests" / "lm_eval_reference.py"), str(out), str(folder),
                             model_dir, str(MAX_LENGTH), *TASKS], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


SETTINGS = {"default": ("tiny_bos", ", add_bos_token: true"), "no_bos": ("tiny", "")}
"""lm-eval's configuration (tests/lm_eval_reference.py) → our model of the suite and its ``add_bos_token``: lm-eval
0.4.13's default is ``add_bos_token: true``; its ``add_bos_token=False`` is our default (unset)."""


def suite_file(folder: Path, task: str, model_dir: str) -> Path:
    """A suite of ``task`` with one model per lm-eval configuration."""
    path = folder / "evals" / f"{task}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    models = "".join(f"  - {{name: {name}, backend: local, model: {model_dir}, batch_size: 1, chat_template: false, "
                     f"max_length: {MAX_LENGTH}{setting}}}\n" for name, setting in SETTINGS.values())
    path.write_text(f"suite: {task}\nlm_eval: {{task: {folder / 'tasks' / task}.yaml}}\nmodels:\n{models}")
    return path


def our_name(key: str) -> str:
    """lm-eval's ``metric,filter`` key as this project's metric name."""
    metric, filter_name = key.split(",")
    return metric if filter_name == "none" else f"{metric}.{filter_name}"


def run_ours(folder: Path, model_dir: str) -> dict[str, dict[str, dict[str, pd.DataFrame]]]:
    """The three tasks as suites: per configuration and task, the samples, generations and scores tables and the
    overall metrics of its model."""
    ours: dict[str, dict[str, dict[str, pd.DataFrame]]] = {config: {} for config in SETTINGS}
    for task in TASKS:
        result = run_suite(load_suite(suite_file(folder, task, model_dir)), local_instance())
        runs = {run.model: run for run in result.models}
        for config, (name, _) in SETTINGS.items():
            run = runs[name]
            assert run.success, run.error
            tables = {stage: pd.read_parquet(run.outputs[stage]) for stage in ("samples", "generations", "scores")}
            ours[config][task] = {**tables, "metrics": run.metrics[run.metrics["breakdown_key"].isna()].set_index(
                "metric")}
    return ours


def test_three_task_yamls_give_lm_evals_numbers_and_requests(tmp_path: Path, eval_home: Path,
                                                            tiny_model_dir: str) -> None:
    folder = tmp_path / "tasks"
    shutil.copytree(ROOT / "tests" / "lm_eval_tasks", folder)
    out = tmp_path / "lm_eval.json"
    reference_run = start_lm_eval(folder, tiny_model_dir, out)  # runs beside ours (its own process)
    try:
        ours = run_ours(tmp_path, tiny_model_dir)
        log, _ = reference_run.communicate(timeout=300)
    finally:
        reference_run.kill()
    assert reference_run.returncode == 0, log.decode(errors="replace")[-4000:]
    references = json.loads(out.read_text())
    assert set(references) == set(SETTINGS)
    for config in SETTINGS:
        check_equal(config, references[config], ours[config], load_task_yaml(folder / "tiny_mc.yaml"))

    # the two settings score differently (the tiny tokenizer has a BOS): a BOS before every context and text
    default, no_bos = ours["default"]["tiny_ppl"]["generations"], ours["no_bos"]["tiny_ppl"]["generations"]
    assert (default["n_tokens"] == no_bos["n_tokens"] + 1).all()  # the text's own BOS is scored too
    strict = [references[config]["results"]["tiny_gen"]["exact_match,strict"] for config in ("default", "no_bos")]
    assert strict == [0.125, 0.375]  # a BOS before each plain generation prompt changes the answers too
    assert all(a != pytest.approx(b, rel=1e-3) for a, b in zip(default["logprob"], no_bos["logprob"], strict=True))
    mc_default, mc_plain = ([x for row in ours[config]["tiny_mc"]["generations"]["choice_logprobs"]
                             for x in json.loads(row)] for config in ("default", "no_bos"))
    # (a context longer than the 64-token window loses its BOS to the left cut: some choices score the same)
    assert any(a != pytest.approx(b, rel=1e-4) for a, b in zip(mc_default, mc_plain, strict=True))


def check_equal(config: str, reference: dict, ours: dict[str, dict[str, pd.DataFrame]], mc_task: LmEvalTask) -> None:
    """lm-eval's metrics and per-item requests, answers and log-likelihoods in one configuration, equal to ours."""
    for task in TASKS:  # every metric lm-eval reports, equal
        expected = {our_name(k): v for k, v in reference["results"][task].items() if "," in k and "stderr" not in k}
        assert expected and set(expected) == set(ours[task]["metrics"].index), (config, task)
        for name, value in expected.items():
            assert ours[task]["metrics"].loc[name, "value"] == pytest.approx(value, rel=1e-6), (config, task, name)

    mc = ours["tiny_mc"]
    for item, sample, row in zip(reference["samples"]["tiny_mc"], mc["samples"].itertuples(),
                                 mc["generations"].itertuples(), strict=True):
        choices = json.loads(sample.choices)
        assert [tuple(a) for a in item["arguments"]] == [
            (sample.input, mc_task.template.target_delimiter + c) for c in choices]
        assert item["target"] == int(sample.reference)
        assert json.loads(row.choice_logprobs) == pytest.approx([r[0][0] for r in item["resps"]], rel=1e-6), config
    assert any("Answer each question.\n\nQuestion:" in s for s in mc["samples"]["input"])  # description + shots

    gen = ours["tiny_gen"]
    scores = gen["scores"].set_index(["sample_id", "scorer"])
    assert len(reference["samples"]["tiny_gen"]) == 2 * len(gen["samples"])  # one entry per item per filter
    for item in reference["samples"]["tiny_gen"]:
        sample = gen["samples"].iloc[item["doc_id"]]
        answer = gen["generations"].set_index("sample_id").loc[sample.sample_id]
        prompt, kwargs = item["arguments"][0]
        assert prompt == sample.input
        assert kwargs["until"] == ["\n\n", "Q:"] and kwargs["max_gen_toks"] == 8
        assert answer.output == item["resps"][0][0], config
        scored = scores.loc[(sample.sample_id, f"exact_match.{item['filter']}")]
        assert scored.extracted == item["filtered_resps"][0]
        assert scored.score == item["exact_match"]

    ppl = ours["tiny_ppl"]
    for item, sample, row in zip(reference["samples"]["tiny_ppl"], ppl["samples"].itertuples(),
                                 ppl["generations"].itertuples(), strict=True):
        assert item["arguments"] == [[sample.input]]
        assert row.logprob == pytest.approx(item["resps"][0][0], rel=1e-6), config
    assert max(ppl["generations"]["n_tokens"]) > MAX_LENGTH  # one text spans several rolling windows


if __name__ == "__main__":  # pragma: no cover - manual use
    sys.exit(pytest.main([__file__, "-q"]))
