"""``backend: recorded``: an agent whose sessions were already recorded (a ``task: traces`` suite evaluates its
spans). Nothing is sampled from it; ``model`` is the agent's service name (the spans' resource ``service.name``),
so one suite can evaluate several agents side by side, each a partition."""

from __future__ import annotations

from typing import Any

from eval_pipeline.inference.backend_registry import Backend


def _build_sampler(spec: Any, suite: Any, samples: Any) -> Any:
    raise ValueError(f"model {spec.name!r} is a recorded agent (backend 'recorded'): its sessions are read from the "
                     "suite's traces source, nothing is sampled from it")


BACKEND = Backend(name="recorded", build=_build_sampler, temperature=(0.0, None))
