"""A suite's ``prompt``: its dataset's items rendered through the templates, with few-shot examples drawn as lm-eval
draws them, into the samples table (``lm_eval_tasks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from eval_pipeline.data.formats import check_breakdown_keys
from eval_pipeline.errors import EvalInputError
from eval_pipeline.lm_eval_tasks.documents import read_docs
from eval_pipeline.lm_eval_tasks.fewshot import FewshotContext
from eval_pipeline.lm_eval_tasks.samples import Shape, template_samples
from eval_pipeline.lm_eval_tasks.templates import PromptTemplate, TemplateProblem

if TYPE_CHECKING:
    from eval_pipeline.suites.spec import PromptSpec, Suite


def prompt_template(prompt: PromptSpec) -> PromptTemplate:
    return PromptTemplate(doc_to_text=prompt.doc_to_text, doc_to_target=prompt.doc_to_target,
                          doc_to_choice=prompt.doc_to_choice, target_delimiter=prompt.target_delimiter,
                          fewshot_delimiter=prompt.fewshot_delimiter, description=prompt.description)


def prompt_samples(suite: Suite, shape: Shape, limit: int | None = None) -> pd.DataFrame:
    """The suite's items as samples rows through its ``prompt`` (the first ``limit`` items; examples are drawn for
    them in order, so an item's prompt does not depend on the items after it)."""
    prompt = suite.prompt
    assert prompt is not None
    uri = suite.resolve_uri(suite.dataset.uri)
    items = read_docs([uri])
    pool = read_docs([suite.resolve_uri(prompt.fewshot_uri)]) if prompt.fewshot_uri else items
    template = prompt_template(prompt)
    same = prompt.fewshot_uri is None or suite.resolve_uri(prompt.fewshot_uri) == uri
    try:
        context = FewshotContext(template, prompt.num_fewshot, [item.doc for item in pool], prompt.fewshot_sampler,
                                 prompt.fewshot_seed, same_split=same)
    except TemplateProblem as exc:
        raise EvalInputError(str(exc), file=suite.source_path, field="prompt.num_fewshot") from None
    items = items[:limit] if limit is not None else items
    samples = template_samples(items, template, shape, context)
    check_breakdown_keys(samples.to_dict("records"), suite.breakdown_keys, uri, limit)
    return samples
