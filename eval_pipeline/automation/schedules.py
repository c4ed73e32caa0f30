"""The nightly regression schedule: every model partition of a suite, re-evaluated."""

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions, partition_shard, shard_keys
from eval_pipeline.assets.run_tags import model_run_tags
from eval_pipeline.automation.jobs import AssetJob
from eval_pipeline.suites.spec import Suite


def nightly_schedule(suite: Suite, job: AssetJob) -> dg.ScheduleDefinition:
    partitions = model_partitions(suite)

    @dg.schedule(name=f"{suite.suite}_nightly", cron_schedule=suite.schedule or "0 2 * * *", job=job,
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Re-evaluates every model of {suite.suite} (a regression run).")
    def schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.strftime("%Y-%m-%d") if context.scheduled_execution_time else "now"
        for model in sorted(context.instance.get_dynamic_partitions(partitions.name)):
            for key in shard_keys(suite, model):  # one run per shard of a sharded suite
                shard = partition_shard(key)
                run_key = f"{day}:{model}" if shard is None else f"{day}:{model}:shard{shard}"
                yield dg.RunRequest(run_key=run_key, partition_key=key,
                                    tags={**model_run_tags(suite, model), "eval/trigger": "nightly"})

    return schedule
