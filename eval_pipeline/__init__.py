"""eval_pipeline: a self-hostable evaluation pipeline for LLMs and agents, orchestrated by Dagster."""

__version__ = "0.1.0"
