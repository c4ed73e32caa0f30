"""An agent wrapped in an AWS Lambda function, conversed with through ``lambda`` Invoke (RequestResponse).

Each turn's event is the service payload (``service_agent``), whose ``session_id`` lets the function keep the
conversation. A function that fails answers HTTP 200 with ``X-Amz-Function-Error`` and an
``{"errorType", "errorMessage"}`` payload: that turn becomes an error (``<errorType>: <errorMessage>``), never a
reply. Config (a suite's ``environment``, an ``EnvironmentSpec``, or the function alone)::

    {"function": "my-agent" | "my-agent:prod" | "arn:aws:lambda:us-east-1:123456789012:function:my-agent",
     "region": <from the ARN>, "timeout_s": 120, "max_attempts": 6}

A ``qualifier`` (the AgentCore endpoint name) does not apply to a Lambda and is ignored with a warning; a version or
alias goes in the function name (``name:alias``).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eval_pipeline.agents.service_agent import ConfigReader, Exchange, ServiceAgent, ServiceKind, ServiceReplyError

_NAME = r"[A-Za-z0-9_-]{1,64}(?::(?:\$LATEST|[A-Za-z0-9_-]{1,128}))?"
FUNCTION = re.compile(
    rf"^(?:arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):\d{{12}}:function:|\d{{12}}:function:)?{_NAME}$")
KEYS = {"function", "arn", "qualifier", "region", "timeout_s", "max_attempts"}
"""``arn`` is a synonym of ``function`` (a suite's ``environment.arn``)."""


@dataclass(frozen=True)
class LambdaSettings:
    """A validated Lambda agent config."""

    function: str
    region: str | None = None
    timeout_s: float = 120.0
    max_attempts: int = 6


class LambdaAgent(ServiceAgent):
    """One rollout at a time against one Lambda function."""

    service = "lambda"

    settings: LambdaSettings

    def where(self) -> str:
        return f"lambda {self.settings.function}"

    def invoke(self, payload: bytes) -> Exchange:
        response = self.client.invoke(FunctionName=self.settings.function, InvocationType="RequestResponse",
                                      Payload=payload)
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise ServiceReplyError(f"{self.where()}: {function_error(body, response['FunctionError'])}")
        return Exchange(body=body, content_type="application/json")


def function_error(body: bytes, kind: str) -> str:
    """``<errorType>: <errorMessage>`` from a failed function's payload (its raw text if it is not that shape)."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, Mapping) and ("errorMessage" in value or "errorType" in value):
        return f"{value.get('errorType') or kind}: {value.get('errorMessage', '')}"
    text = body.decode("utf-8", errors="replace").strip()
    return f"{kind}: {text}" if text else f"{kind} function error"


class LambdaKind(ServiceKind):
    """The ``lambda`` entry of the environment registry: validate a config, build an agent from it."""

    name = "lambda"
    settings_type = LambdaSettings
    agent_type = LambdaAgent
    target_setting = "function"

    def validate(self, config: Any, file: str | None = None, *, root: Any = None,
                 field: str = "environment") -> LambdaSettings:
        """The settings, or EvalInputError naming the file and field (``root`` is unused: nothing is imported)."""
        reader = ConfigReader.of(config, "function", KEYS, file, field)
        key = "function" if "function" in reader.values else "arn"
        function = reader.get(key, str, None)
        if not function:
            raise reader.error("function", "a Lambda function name or ARN ('function' or 'arn') is required")
        match = FUNCTION.match(function)
        if match is None:
            raise reader.error(key, f"not a Lambda function name or ARN: {function!r} (expected a name, name:alias, "
                                    "or arn:aws:lambda:<region>:<account>:function:<name>)")
        if reader.values.get("qualifier") is not None:
            warnings.warn(f"{file or 'environment'}: 'qualifier' is an AgentCore endpoint name and is ignored for "
                          f"a Lambda agent; put a version or alias in the function name (name:alias)", stacklevel=2)
        return LambdaSettings(
            function=function, region=reader.get("region", str, match["region"]),
            timeout_s=float(reader.get("timeout_s", (int, float), 120.0, positive=True)),
            max_attempts=reader.get("max_attempts", int, 6, positive=True))


LAMBDA = LambdaKind()
