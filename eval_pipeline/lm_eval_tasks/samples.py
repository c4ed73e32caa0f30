"""Items rendered through a prompt template (and few-shot examples) into the ``samples`` table: what a model reads
is the ``input`` column, exactly; the answer is the ``reference`` (a choice's index for multiple choice), the item's
fields stay in ``metadata`` (for breakdowns and templates)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, Literal

import pandas as pd

from eval_pipeline.data.schemas import SAMPLES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.lm_eval_tasks.documents import Located
from eval_pipeline.lm_eval_tasks.fewshot import FewshotContext
from eval_pipeline.lm_eval_tasks.templates import PromptTemplate, TemplateProblem

Shape = Literal["choice", "answer", "text", "target_text"]
"""choice: a multiple-choice item (context, choices, the right index); answer: a prompt and its answer text;
text: ``doc_to_text`` is the text scored (perplexity); target_text: ``doc_to_target`` is (lm-eval's rolling tasks)."""

GOLDS_FIELD = "lm_eval_golds"
"""The metadata field holding every acceptable answer of a generated item (lm-eval's several targets)."""


ID_FIELDS = ("sample_id", "id", "recordId")


def template_samples(items: Sequence[Located], template: PromptTemplate, shape: Shape,
                     context: FewshotContext | None = None, *, id_prefix: str | None = None) -> pd.DataFrame:
    """One samples row per item, in order (the few-shot draws follow the items' order, as lm-eval's do). Sample
    ids are ``<id_prefix><index>`` when a prefix is given (lm-eval's doc ids), else the item's id field or
    ``<file>:<line>``."""
    context = context or FewshotContext(template)
    rows = []
    for index, item in enumerate(items):
        try:
            rows.append(_row(index, item, template, shape, context, id_prefix))
        except TemplateProblem as exc:
            raise EvalInputError(str(exc), file=item.file, line=item.line, field="prompt") from None
    return pd.DataFrame(rows, columns=SAMPLES.names)


def _row(index: int, item: Located, template: PromptTemplate, shape: Shape, context: FewshotContext,
         id_prefix: str) -> dict[str, Any]:
    doc = item.doc
    choices: list[str] | None = None
    metadata = dict(doc)
    if shape == "text":
        text, reference = template.text(doc), None
    elif shape == "target_text":
        text, reference = str(template.target(doc)), None
    elif shape == "choice":
        text, choices = context(doc), template.choices(doc)
        reference = str(gold_index(template.target(doc), choices or []))
    else:
        text = context(doc)
        golds = answer_golds(template, doc)
        reference, metadata[GOLDS_FIELD] = golds[0], golds
    category = doc.get("category")
    given = next((str(doc[k]) for k in ID_FIELDS if doc.get(k) is not None), None)
    sample_id = (f"{id_prefix}{index}" if id_prefix is not None
                 else given or f"{PurePosixPath(item.file).name}:{item.line}")
    row = {"sample_id": sample_id, "input": text, "input_kind": "text", "reference": reference,
           "choices": json.dumps(choices, ensure_ascii=False) if choices is not None else None,
           "category": str(category) if isinstance(category, str | int | float) else None,
           "metadata": json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str),
           "source": item.file, "line": item.line}
    hashed = {k: row[k] for k in ("input", "input_kind", "reference", "choices", "category", "metadata")}
    row["row_hash"] = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    return row


def gold_index(target: Any, choices: list[str]) -> int:
    """The right choice's index: the target itself, or the position of the target string among the choices."""
    if len(choices) < 2 or not all(choices):
        raise TemplateProblem(f"doc_to_choice must give at least two non-empty choices, got {choices!r}")
    if isinstance(target, str) and target in choices:
        return choices.index(target)
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(choices):
        raise TemplateProblem(f"doc_to_target must give the right choice's index (0 to {len(choices) - 1}) or one "
                              f"of the choices, got {target!r}")
    return target


def answer_golds(template: PromptTemplate, doc: dict[str, Any]) -> list[str]:
    """Every acceptable answer as text (lm-eval: the choice a target index points at, each of several targets,
    else the target cast to a string)."""
    target, choices = template.target(doc), template.choices(doc)
    if choices is not None:
        return [choices[gold_index(target, choices)]]
    if isinstance(target, list):
        if not target:
            raise TemplateProblem("doc_to_target gives an empty list of answers")
        return [str(t) for t in target]
    return [str(target)]
