"""The SDK judge's default verdict comes from the judge backend's declaration in the backend registry (it scores
text in this process: likelihood verdicts), not from its name being ``local``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from eval_pipeline.inference.backend_registry import BACKEND_REGISTRY, Backend
from eval_pipeline.sdk.llm_as_judge import _default_verdict


@dataclass
class Judge:
    backend: str


def never(*args: Any) -> Any:
    raise AssertionError("a default verdict builds nothing")


@pytest.fixture
def plugin_backends() -> Iterator[None]:
    """A plugin's in-process backend that scores likelihoods, and a remote one that does too."""
    BACKEND_REGISTRY.register("inproc_scorer", Backend(name="inproc_scorer", build=never, likelihood=never))
    BACKEND_REGISTRY.register("remote_scorer", Backend(name="remote_scorer", build=never, likelihood=never,
                                                       remote=True))
    try:
        yield
    finally:
        BACKEND_REGISTRY.unregister("inproc_scorer")
        BACKEND_REGISTRY.unregister("remote_scorer")


def test_a_backend_that_scores_likelihoods_in_process_gets_likelihood_verdicts(plugin_backends: None) -> None:
    assert _default_verdict(Judge("inproc_scorer")) == "likelihood"
    assert _default_verdict(Judge("local")) == "likelihood"


def test_other_judges_write_their_verdict(plugin_backends: None) -> None:
    assert _default_verdict(Judge("remote_scorer")) == "generate"
    assert _default_verdict(Judge("openai")) == "generate"    # log-probabilities, but a remote service
    assert _default_verdict(Judge("bedrock")) == "generate"
    assert _default_verdict(Judge("no_such_backend")) == "generate"  # reported when the suite is checked
    assert _default_verdict("us.anthropic.claude-3-5-haiku") == "generate"  # a bare model id
