"""Few-shot contexts, sampled and joined as lm-eval 0.4 does: one ``random.Random(seed)`` per task drawing for the
items in order (``default``: ``rnd.sample`` of the pool, one extra drawn and the item itself removed when the
examples come from the evaluated split; ``first_n``: the pool's first n), then the description, each example's
question, target delimiter, answer and few-shot delimiter, and the item's question."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eval_pipeline.lm_eval_tasks.templates import Doc, PromptTemplate, TemplateProblem, render
from eval_pipeline.registry import Registry

Sampler = Callable[[random.Random, Sequence[Doc], int, Doc | None], list[Doc]]
"""(the task's generator, the pool, n, the evaluated item when the pool is its own split) → n examples."""

SAMPLERS: Registry[Sampler] = Registry("few-shot sampler")


def _without(doc: Doc | None, docs: Sequence[Doc]) -> list[Doc]:
    return [d for d in docs if d != doc] if doc is not None else list(docs)


def random_examples(rnd: random.Random, pool: Sequence[Doc], n: int, item: Doc | None) -> list[Doc]:
    """lm-eval's ``default`` sampler."""
    if item is None:
        return rnd.sample(list(pool), n)
    picked = _without(item, rnd.sample(list(pool), n + 1))[:n]
    if len(picked) < n:  # copies of the item in the pool were drawn: draw again from the pool without any of them
        picked = rnd.sample(_without(item, pool), n)
    return picked


def first_examples(rnd: random.Random, pool: Sequence[Doc], n: int, item: Doc | None) -> list[Doc]:
    """lm-eval's ``first_n`` sampler (canonical ordered examples, MMLU-style)."""
    return _without(item, pool)[:n]


SAMPLERS.register("default", random_examples)
SAMPLERS.register("first_n", first_examples)


@dataclass
class FewshotContext:
    """Builds each item's context; create one per run and call it for the items in order (the draws follow)."""

    template: PromptTemplate
    num_fewshot: int = 0
    pool: Sequence[Doc] = ()
    sampler: str = "default"
    seed: int = 1234
    same_split: bool = False
    """The pool is the evaluated split: an item is never its own example."""
    example_template: PromptTemplate | None = None
    """How examples are written, when not as the items are (lm-eval's ``fewshot_config`` overrides)."""
    _rnd: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_fewshot < 0:
            raise TemplateProblem(f"num_fewshot must be at least 0, got {self.num_fewshot}")
        if self.num_fewshot > 0 and len(self.pool) < self.num_fewshot + (1 if self.same_split else 0):
            raise TemplateProblem(f"{self.num_fewshot} few-shot examples asked for, the pool has {len(self.pool)}")
        self._rnd = random.Random(self.seed)

    def examples(self, doc: Doc) -> list[Doc]:
        if self.num_fewshot == 0:
            return []
        draw = SAMPLERS.get(self.sampler)
        return draw(self._rnd, self.pool, self.num_fewshot, doc if self.same_split else None)

    def __call__(self, doc: Doc) -> str:
        """The item's whole context: description, examples, question (no answer, no trailing delimiter)."""
        template = self.template
        shots = self.example_template or template
        parts = [description(template.description, doc)]
        for example in self.examples(doc):
            target = shots.target(example)
            if target is None or target == "":  # an example without an answer is its question alone, as in lm-eval
                parts.append(shots.text(example))
                continue
            parts.append(shots.text(example) + shots.target_delimiter + shots.answer_text(example)
                         + shots.fewshot_delimiter)
        parts.append(template.text(doc))
        return "".join(parts)


def description(source: str, doc: Doc) -> str:
    """The task description: a field of the item, or a template over it (lm-eval's ``resolve_field``)."""
    if not source:
        return ""
    return str(doc[source]) if source in doc else render(source, doc)
