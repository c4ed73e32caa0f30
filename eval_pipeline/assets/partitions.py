"""The model partitions of a suite: dynamic, so sensors can add new checkpoints."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.suites.spec import Suite


def model_partitions(suite: Suite) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{suite.suite}_models")


def register_declared_models(instance: dg.DagsterInstance, suite: Suite) -> list[str]:
    """Add the suite's declared models as partitions; returns those that were new."""
    name = model_partitions(suite).name
    existing = set(instance.get_dynamic_partitions(name))
    new = [m.name for m in suite.models if m.name not in existing]
    if new:
        instance.add_dynamic_partitions(name, new)
    return new
