"""Recorded agent sessions (OpenTelemetry spans from files, OTLP exports, CloudWatch Logs or our own rollouts)
evaluated the way Bedrock AgentCore's batch evaluation does: the same evaluator ids, ground truth and job API,
self-hosted. No Dagster here: ``tasks/traces.py`` is the suite's task kind over this library."""
