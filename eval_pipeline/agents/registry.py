"""Environment kinds a suite can name (a ``Registry``, loaded on first use; plugins add theirs through the entry
point group ``eval_pipeline.environments``)."""

from __future__ import annotations

from typing import Any

from eval_pipeline.registry import Registry

ENVIRONMENTS: Registry[Any] = Registry("environment", "eval_pipeline.environments")
for _name, _path in (
    ("python", "eval_pipeline.agents.python_env:PythonEnvironmentKind"),
    ("agentcore", "eval_pipeline.agents.agentcore:AGENTCORE"),
    ("lambda", "eval_pipeline.agents.lambda_agent:LAMBDA"),
    ("harbor", "eval_pipeline.agents.harbor_env:HARBOR"),
):
    ENVIRONMENTS.register(_name, _path)
