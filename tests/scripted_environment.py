"""A local Python environment whose tasks succeed a known number of times per model, for SDK and pipeline tests.

No tools: the agent answers once and the episode ends. A task's ``successes`` maps a model name to how many of its
rollouts succeed: the environment reads the model's name from the reply (the fake LLM answers ``<model> says …``)
and rewards 1.0 to the first ``successes[model]`` replies of that model to that task, 0.0 to the rest. Which group
member gets which reward depends on scheduling; how many succeed per task and model does not, so pass@k, pass^k
and the success rate are known exactly. Counts are kept per process; ``reset_counts()`` clears them.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from eval_pipeline.agents.environment import AgentTask, Reset, Step
from eval_pipeline.data.messages import ChatMessage, user

_COUNTS: Counter[tuple[str, str]] = Counter()
_LOCK = threading.Lock()


def reset_counts() -> None:
    with _LOCK:
        _COUNTS.clear()


def counts() -> dict[tuple[str, str], int]:
    """(task id, model) -> replies seen."""
    with _LOCK:
        return dict(_COUNTS)


class CountingEnvironment:
    """One agent message per episode; reward 1.0 for the first ``successes[model]`` replies per task and model."""

    def __init__(self, system_prompt: str = "Answer in one line.") -> None:
        self.system_prompt = system_prompt
        self.task: AgentTask | None = None

    def reset(self, task: AgentTask) -> Reset:
        self.task = task
        return Reset(messages=(ChatMessage(role="system", content=self.system_prompt), user(task.prompt)))

    def step(self, message: ChatMessage) -> Step:
        assert self.task is not None
        successes: dict[str, Any] = dict(self.task.data.get("successes") or {})
        model = (message.text or "").split(" says ", 1)[0].strip()
        with _LOCK:
            seen = _COUNTS[(self.task.task_id, model)]
            _COUNTS[(self.task.task_id, model)] += 1
        reward = 1.0 if seen < int(successes.get(model, 0)) else 0.0
        return Step(observations=(), reward=reward, done=True)

    def close(self) -> None:
        pass
