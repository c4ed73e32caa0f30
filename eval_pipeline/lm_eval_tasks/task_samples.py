"""An lm-eval task's evaluated split as the samples table: its items rendered with few-shot examples drawn as lm-eval
draws them (one generator seeded with the few-shot seed, the items in order)."""

from __future__ import annotations

import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.lm_eval_tasks.documents import read_docs
from eval_pipeline.lm_eval_tasks.fewshot import FewshotContext
from eval_pipeline.lm_eval_tasks.samples import Shape, template_samples
from eval_pipeline.lm_eval_tasks.task_yaml import LmEvalTask
from eval_pipeline.lm_eval_tasks.templates import TemplateProblem

SHAPES: dict[str, Shape] = {"multiple_choice": "choice", "generate_until": "answer",
                            "loglikelihood_rolling": "target_text"}
"""What a samples row holds for each output type (a rolling task scores ``doc_to_target``, as lm-eval does)."""


def lm_eval_samples(task: LmEvalTask, limit: int | None = None, num_fewshot: int | None = None,
                    seed: int = 1234) -> pd.DataFrame:
    """The first ``limit`` items of the evaluated split (all by default), ids ``0``, ``1`` ... (lm-eval's doc ids);
    ``num_fewshot`` overrides the YAML's."""
    items = read_docs(task.splits[task.test_split])
    shots = task.fewshot.num_fewshot if num_fewshot is None else num_fewshot
    if task.fewshot.samples is not None:
        pool = [dict(sample) for sample in task.fewshot.samples]
    elif shots and task.fewshot.split is not None:
        pool = [item.doc for item in read_docs(task.splits[task.fewshot.split])]
    else:
        pool = []
    try:
        context = FewshotContext(task.template, shots, pool, task.fewshot.sampler, seed,
                                 same_split=task.fewshot.excludes_item,
                                 example_template=task.example_template())
    except TemplateProblem as exc:
        raise EvalInputError(str(exc), file=task.path, field="num_fewshot") from None
    return template_samples(items[:limit] if limit is not None else items, task.template, SHAPES[task.output_type],
                            context, id_prefix="")
