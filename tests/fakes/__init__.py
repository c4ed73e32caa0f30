"""Wire-level test doubles for remote services (Bedrock runtime, SageMaker runtime, OpenAI-compatible servers).

Names are loaded lazily so that ``python -m tests.fakes.llm_server`` does not import its module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.llm_server import (
        ENDPOINT_SHAPES,
        FAULT_KINDS,
        FakeLLMServer,
        FakeLLMServerProcess,
        RecordedRequest,
        configure_remote,
        fetch_stats,
        request_key,
        reset_remote,
    )

__all__ = [
    "ENDPOINT_SHAPES",
    "FAULT_KINDS",
    "FakeLLMServer",
    "FakeLLMServerProcess",
    "RecordedRequest",
    "configure_remote",
    "fetch_stats",
    "request_key",
    "reset_remote",
]


def __getattr__(name: str) -> Any:
    """Load public names from ``tests.fakes.llm_server`` on first use."""
    if name in __all__:
        return getattr(importlib.import_module("tests.fakes.llm_server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
