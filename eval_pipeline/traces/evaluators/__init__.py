"""Trace evaluators by AgentCore's ids: programmatic trajectory matches, judged builtins, custom evaluators."""
