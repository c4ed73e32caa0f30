"""Sensors: register declared models, and evaluate each new checkpoint dropped into a watched folder."""

import re
from pathlib import Path

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions
from eval_pipeline.automation.jobs import AssetJob
from eval_pipeline.suites.spec import NAME_PATTERN, Suite

CHECKPOINT_MARKER = "config.json"


def declared_models_sensor(suite: Suite) -> dg.SensorDefinition:
    """Keeps the suite's model partitions in step with the models its file declares."""
    partitions = model_partitions(suite)

    @dg.sensor(name=f"{suite.suite}_declared_models", minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Adds the models declared in {suite.suite}'s suite file as partitions.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        existing = set(context.instance.get_dynamic_partitions(partitions.name))
        new = [m.name for m in suite.models if m.name not in existing]
        if not new:
            return dg.SkipReason("every declared model is a partition")
        return dg.SensorResult(dynamic_partitions_requests=[partitions.build_add_request(new)])

    return sensor


def new_checkpoints(folder: Path, known: set[str]) -> list[str]:
    """Checkpoint directories (holding a config.json) in the folder that are not partitions yet."""
    if not folder.is_dir():
        return []
    return sorted(
        entry.name for entry in folder.iterdir()
        if entry.is_dir() and (entry / CHECKPOINT_MARKER).is_file() and entry.name not in known
        and re.match(NAME_PATTERN, entry.name))


def new_checkpoint_sensor(suite: Suite, job: AssetJob) -> dg.SensorDefinition:
    """Registers each new checkpoint folder as a model partition and requests its evaluation."""
    assert suite.watch is not None
    folder = suite.resolve_path(suite.watch.dir)
    partitions = model_partitions(suite)

    @dg.sensor(name=f"{suite.suite}_new_checkpoints", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Evaluates each new model directory that appears in {folder}.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        found = new_checkpoints(folder, set(context.instance.get_dynamic_partitions(partitions.name)))
        if not found:
            return dg.SkipReason(f"no new checkpoint in {folder}")
        context.log.info(f"new checkpoints: {', '.join(found)}")
        return dg.SensorResult(
            dynamic_partitions_requests=[partitions.build_add_request(found)],
            run_requests=[dg.RunRequest(partition_key=name, run_key=f"checkpoint:{name}",
                                        tags={"eval/trigger": "new_checkpoint"}) for name in found])

    return sensor
