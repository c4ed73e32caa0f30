"""An agent that is a Bedrock AgentCore runtime, conversed with through ``bedrock-agentcore`` InvokeAgentRuntime.

Every turn of a rollout goes to the runtime's endpoint (``qualifier``, ``DEFAULT`` unless set) with the same
``runtimeSessionId`` (derived from the rollout id: see ``service_agent.session_id_for``), so the runtime keeps the
conversation; ``finish`` stops the session (StopRuntimeSession, best effort). Config (a suite's ``environment``,
an ``EnvironmentSpec``, or the ARN alone)::

    {"arn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/my_agent-AbC123xyz9",
     "qualifier": "DEFAULT", "region": <from the ARN>, "timeout_s": 120, "max_attempts": 6, "user_id": null}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eval_pipeline.agents.service_agent import ConfigReader, Exchange, ServiceAgent, ServiceKind

RUNTIME_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
                         r"runtime/(?P<id>[A-Za-z0-9_-]{1,128})$")
QUALIFIER = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
KEYS = {"arn", "qualifier", "region", "timeout_s", "max_attempts", "user_id"}


@dataclass(frozen=True)
class AgentCoreSettings:
    """A validated AgentCore agent config."""

    arn: str
    qualifier: str = "DEFAULT"
    region: str | None = None
    timeout_s: float = 120.0
    max_attempts: int = 6
    user_id: str | None = None


class AgentCoreAgent(ServiceAgent):
    """One rollout at a time against one AgentCore runtime endpoint."""

    service = "bedrock-agentcore"

    settings: AgentCoreSettings

    def where(self) -> str:
        return f"agentcore {self.settings.arn} ({self.settings.qualifier})"

    def invoke(self, payload: bytes) -> Exchange:
        request: dict[str, Any] = {
            "agentRuntimeArn": self.settings.arn, "qualifier": self.settings.qualifier,
            "runtimeSessionId": self.session_id, "payload": payload,
            "contentType": "application/json", "accept": "application/json, text/event-stream"}
        if self.settings.user_id:
            request["runtimeUserId"] = self.settings.user_id
        response = self.client.invoke_agent_runtime(**request)
        body = response["response"].read()
        return Exchange(body=body, content_type=response.get("contentType") or "application/json")

    def close_session(self) -> None:
        self.client.stop_runtime_session(agentRuntimeArn=self.settings.arn, qualifier=self.settings.qualifier,
                                         runtimeSessionId=self.session_id)


class AgentCoreKind(ServiceKind):
    """The ``agentcore`` entry of the environment registry: validate a config, build an agent from it."""

    name = "agentcore"
    settings_type = AgentCoreSettings
    agent_type = AgentCoreAgent
    target_setting = "arn"

    def validate(self, config: Any, file: str | None = None, *, root: Any = None,
                 field: str = "environment") -> AgentCoreSettings:
        """The settings, or EvalInputError naming the file and field (``root`` is unused: nothing is imported)."""
        reader = ConfigReader.of(config, "arn", KEYS, file, field)
        arn = reader.get("arn", str, None)
        if not arn:
            raise reader.error("arn", "an AgentCore runtime ARN is required")
        match = RUNTIME_ARN.match(arn)
        if match is None:
            raise reader.error("arn", f"not an AgentCore runtime ARN: {arn!r} (expected "
                                      "arn:aws:bedrock-agentcore:<region>:<account>:runtime/<runtime-id>)")
        qualifier = reader.get("qualifier", str, "DEFAULT")
        if not QUALIFIER.match(qualifier):
            raise reader.error("qualifier", f"not an endpoint name: {qualifier!r} (letters, digits, '_' and '-')")
        return AgentCoreSettings(
            arn=arn, qualifier=qualifier, region=reader.get("region", str, match["region"]),
            timeout_s=float(reader.get("timeout_s", (int, float), 120.0, positive=True)),
            max_attempts=reader.get("max_attempts", int, 6, positive=True), user_id=reader.get("user_id", str, None))


AGENTCORE = AgentCoreKind()
