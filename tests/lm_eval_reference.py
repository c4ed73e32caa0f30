"""Runs lm-evaluation-harness itself (in .venv-lmeval, never in .venv) on task YAMLs and writes its metrics and
per-item samples as JSON: ``python tests/lm_eval_reference.py <out.json> <task folder> <model dir> <max_length>
<task> [<task> ...]``. The comparison test calls it in a subprocess with the lm-eval environment's Python.

It runs the tasks twice in the one process (lm-eval's import is most of its time), under the keys of ``CONFIGS``:
``default``, lm-eval 0.4.13's own default, which encodes with the tokenizer's special tokens (a BOS before every
context and rolling text; this project's ``add_bos_token: true``), and ``no_bos`` with ``add_bos_token=False``: no
special tokens, the BOS (else EOS) only as the prefix of a rolling text or an empty context (lm-eval before 0.4.13,
and this project's default)."""

from __future__ import annotations

import json
import sys

CONFIGS = {"default": "", "no_bos": ",add_bos_token=False"}
"""Output key → what is appended to lm-eval's ``model_args``."""


def run(folder: str, model_dir: str, max_length: str, tasks: list[str], extra_args: str) -> dict[str, object]:
    """One ``simple_evaluate`` of ``tasks``: lm-eval's results and the kept fields of each logged sample."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    result = simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32,max_length={max_length}{extra_args}",
        tasks=tasks, device="cpu", batch_size=1, log_samples=True, bootstrap_iters=0,
        task_manager=TaskManager(include_path=folder, include_defaults=False),
        random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234)
    assert result is not None
    kept = ("doc_id", "arguments", "resps", "filtered_resps", "filter", "target", "acc", "acc_norm", "exact_match")
    samples = {task: [{key: value for key, value in sample.items() if key in kept}
                      for sample in result["samples"][task]] for task in tasks}
    return {"results": result["results"], "samples": samples}


def main(out: str, folder: str, model_dir: str, max_length: str, *tasks: str) -> None:
    runs = {name: run(folder, model_dir, max_length, list(tasks), extra) for name, extra in CONFIGS.items()}
    with open(out, "w", encoding="utf-8") as file:
        json.dump(runs, file, default=str)


if __name__ == "__main__":
    main(*sys.argv[1:])
