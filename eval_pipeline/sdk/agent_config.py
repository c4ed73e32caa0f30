"""The SDK's ``agent_config`` argument as a suite ``environment`` (an ``EnvironmentSpec``).

- an AgentCore runtime ARN (``arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>``) →
  ``{kind: agentcore, arn, qualifier: agent_qualifier}`` (the runtime's ``DEFAULT`` endpoint without one);
- a Lambda function ARN (``arn:aws:lambda:…:function:<name>``) or a function name (``name``, ``name:alias``) →
  ``{kind: lambda, arn}``; an ``agent_qualifier`` does not apply and is ignored with a warning;
- ``"package.module:Class"`` (a dotted module, or one that can be imported) → ``{kind: python, path}``;
- a dict (or an ``EnvironmentSpec``) → the environment as written, of any registered kind.

Whether the ARN, the function name or the class is right is checked with the whole suite (the environment kind's
own validation), before anything runs.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from eval_pipeline.agents.spec import EnvironmentSpec
from eval_pipeline.errors import EvalInputError

AGENTCORE_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:")
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:")
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}(?::(?:\$LATEST|[A-Za-z0-9_-]{1,128}))?$")
ACCEPTED = ("an AgentCore runtime ARN (arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>), a Lambda "
            "function ARN or name, 'package.module:Class' for a local Python environment, or a dict of environment "
            "fields ({'kind': ..., ...})")


def environment_spec(agent_config: Any, agent_qualifier: str | None = None) -> EnvironmentSpec:
    """The environment ``agent_config`` names (``EvalInputError`` for a shape it cannot be)."""
    if isinstance(agent_config, EnvironmentSpec):
        return _with_qualifier(agent_config, agent_qualifier)
    if isinstance(agent_config, Mapping):
        try:
            spec = EnvironmentSpec.model_validate(dict(agent_config))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in ("agent_config", *first["loc"]))
            raise EvalInputError(first["msg"].removeprefix("Value error, "), field=where) from None
        return _with_qualifier(spec, agent_qualifier)
    if not isinstance(agent_config, str) or not agent_config.strip():
        raise EvalInputError(f"cannot use {agent_config!r} as an agent; give {ACCEPTED}", field="agent_config")
    text = agent_config.strip()
    if AGENTCORE_ARN.match(text):
        return EnvironmentSpec(kind="agentcore", arn=text, qualifier=agent_qualifier)
    if LAMBDA_ARN.match(text) or (FUNCTION_NAME.match(text) and not _python_path(text)):
        return _with_qualifier(EnvironmentSpec(kind="lambda", arn=text), agent_qualifier)
    if text.startswith("arn:"):
        raise EvalInputError(f"{text!r} is neither an AgentCore runtime ARN nor a Lambda function ARN; give {ACCEPTED}",
                             field="agent_config")
    if _python_path(text) or re.match(r"^[\w.]+:[A-Za-z_]\w*$", text):
        return _with_qualifier(EnvironmentSpec(kind="python", path=text), agent_qualifier)
    raise EvalInputError(f"cannot tell what agent {text!r} is; give {ACCEPTED}", field="agent_config")


def _python_path(text: str) -> bool:
    """``module:Class`` whose module is dotted or can be found (so ``calc:Env`` is Python when ``calc`` imports,
    and otherwise a Lambda function ``calc`` with alias ``Env``)."""
    module, _, attribute = text.partition(":")
    if not attribute or not re.match(r"^[A-Za-z_]\w*$", attribute) or not re.match(r"^[A-Za-z_][\w.]*$", module):
        return False
    if "." in module:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _with_qualifier(spec: EnvironmentSpec, qualifier: str | None) -> EnvironmentSpec:
    """The qualifier set on an AgentCore environment; for any other kind it does not apply (a warning)."""
    if qualifier is None:
        return spec
    if spec.kind == "agentcore":
        return spec.model_copy(update={"qualifier": qualifier})
    warnings.warn(f"agent_qualifier {qualifier!r} is an AgentCore endpoint name and is ignored for a {spec.kind} "
                  f"agent" + (" (put a version or alias in the function name: name:alias)"
                              if spec.kind == "lambda" else ""), UserWarning, stacklevel=3)
    return spec.model_copy(update={"qualifier": None})
