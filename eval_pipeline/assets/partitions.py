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
    add_partitions(instance, name, new)
    return new


def add_partitions(instance: dg.DagsterInstance, partitions_name: str, keys: list[str]) -> None:
    """Add dynamic partitions, tolerating another process adding the same keys at the same moment (Dagster reads
    then inserts, so two processes can both find a key missing; the loser's insert hits the unique index)."""
    from sqlalchemy.exc import IntegrityError

    for _attempt in range(3):
        missing = [k for k in keys if not instance.has_dynamic_partition(partitions_name, k)]
        if not missing:
            return
        try:
            instance.add_dynamic_partitions(partitions_name, missing)
            return
        except IntegrityError:
            continue  # another process added some of them: read again
    raise RuntimeError(f"could not register partitions {keys} of {partitions_name}")
