"""Agents: environments (local Python, AgentCore runtime, Lambda), the simulated user and the rollout loop."""
