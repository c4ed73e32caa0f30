"""The local side of a rollout whose agent is a service (an AgentCore runtime, a Lambda function).

It opens with the task's prompt as the user's message and offers no tools (the service has its own). With a simulated
user the conversation goes on until the user stops (or the service says it is ``done``); without one the agent's
first reply ends it. The reward is the ``verifier``'s score of the agent's last reply against the task's reference (a
scorer by name: ``numeric_match``, ``contains``, ``exact_match``…; checked when the suite loads); in a conversation
each reply is scored as it comes, so an episode the service ends itself is rewarded too. With no verifier the
service's own reward is used, and an episode that ends with neither is an error row (never a guessed 0).
"""

from __future__ import annotations

from pydantic import ValidationError

from eval_pipeline.agents.environment import AgentTask, Reset, Step
from eval_pipeline.data.messages import ChatMessage, user
from eval_pipeline.scoring.registry import score_one, scorer_problem
from eval_pipeline.scoring.spec import ScorerSpec


def verifier_problem(name: str) -> str | None:
    """Why ``name`` cannot be a verifier (not a scorer name, or no such scorer), or None when it can."""
    try:
        spec = ScorerSpec(name=name)
    except ValidationError as exc:
        return f"{name!r} is not a scorer name: {exc.errors()[0]['msg']}"
    problem = scorer_problem(spec)
    return None if problem is None else problem[1]


class ConversationEnvironment:
    """One episode per instance: the task's prompt in, the agent's replies out, a verifier's reward at the end."""

    def __init__(self, verifier: str | None = None, *, conversational: bool = False) -> None:
        self.verifier = ScorerSpec(name=verifier) if verifier else None
        self.conversational = conversational
        self.task: AgentTask | None = None
        self.last_reply = ""

    def reset(self, task: AgentTask) -> Reset:
        self.task, self.last_reply = task, ""
        return Reset(messages=(user(task.prompt),))

    def step(self, message: ChatMessage) -> Step:
        if message.role == "assistant":
            self.last_reply = message.text
            if self.conversational:  # the simulated user answers; the reply's score so far, in case the agent
                return Step(reward=self._score_so_far())  # service ends the episode itself (its ``done``)
        return self._finish()

    def close(self) -> None:
        self.task = None

    def _score_so_far(self) -> float | None:
        """The verifier's score of the last reply (None without a verifier, or when it cannot score it yet: an
        error there is reported only if the episode ends on that reply)."""
        if self.verifier is None or self.task is None:
            return None
        reference = self.task.data.get("reference")
        if reference is None:
            return None
        score = score_one(self.verifier, self.last_reply, str(reference))
        return None if score.error is not None or score.value is None else float(score.value)

    def _finish(self) -> Step:
        if self.verifier is None:
            return Step(done=True)
        assert self.task is not None
        reference = self.task.data.get("reference")
        score = score_one(self.verifier, self.last_reply, None if reference is None else str(reference))
        if score.error is not None or score.value is None:
            return Step(done=True, error=f"verifier {self.verifier.name}: {score.error or 'no score'}",
                        error_source="environment")
        return Step(reward=float(score.value), done=True, info={"verifier": self.verifier.name})
