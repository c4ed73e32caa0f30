"""A scripted LLM judge for the fake server: reads the fenced blocks of a judge prompt and answers with a verdict
that a test decides, so every judged score is known in advance."""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Callable, Mapping

BLOCK = re.compile(r"<<(\w+)-([0-9a-f]{12})>>\n(.*?)\n<</\1-\2>>", re.DOTALL)

Rule = Callable[[dict[str, str], str], str]
"""(blocks by name, whole prompt) -> the verdict to give."""


def blocks(prompt: str) -> dict[str, str]:
    """The fenced fields of a rendered judge prompt: prompt, prediction, ground_truth, answer_a, answer_b."""
    return {name: text for name, _nonce, text in BLOCK.findall(prompt)}


class ModelRouter:
    """An ``answer`` callable for FakeLLMServer that sends each model id to its own responder and counts calls."""

    def __init__(self, responders: Mapping[str, Callable[[str], str]]) -> None:
        self.responders = dict(responders)
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, prompt: str, model: str) -> str:
        with self._lock:
            self.calls[model] += 1
        return self.responders[model](prompt)


def scripted_judge(rule: Rule, explanation: str = "I compared the response with the rubric.") -> Callable[[str], str]:
    """A judge that explains briefly and ends with ``Verdict: <rule(...)>``."""
    return lambda prompt: f"{explanation}\nVerdict: {rule(blocks(prompt), prompt)}"
