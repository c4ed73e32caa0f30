"""The AgentCore runtimes an account has: the control plane's ListAgentRuntimes, every page."""

from __future__ import annotations

from typing import Any


def list_bedrock_agentcore_runtimes(session: Any = None, *, region: str | None = None) -> list[dict[str, Any]]:
    """Every runtime as ``{"name", "runtime_id", "arn", "status"}`` (``session``: a boto3 Session; the default
    credential chain and region otherwise; ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL`` is honoured)."""
    import boto3

    session = session or boto3.session.Session()
    client = session.client("bedrock-agentcore-control", region_name=region)
    runtimes: list[dict[str, Any]] = []
    for page in client.get_paginator("list_agent_runtimes").paginate():
        for runtime in page.get("agentRuntimes", []):
            runtimes.append({"name": runtime.get("agentRuntimeName"), "runtime_id": runtime.get("agentRuntimeId"),
                             "arn": runtime.get("agentRuntimeArn"), "status": runtime.get("status")})
    return runtimes
