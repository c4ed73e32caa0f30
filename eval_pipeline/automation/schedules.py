"""The nightly regression schedule: every model partition of a suite, re-evaluated."""

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions
from eval_pipeline.automation.jobs import AssetJob
from eval_pipeline.suites.spec import Suite


def nightly_schedule(suite: Suite, job: AssetJob) -> dg.ScheduleDefinition:
    partitions = model_partitions(suite)

    @dg.schedule(name=f"{suite.suite}_nightly", cron_schedule=suite.schedule or "0 2 * * *", job=job,
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Re-evaluates every model of {suite.suite} (a regression run).")
    def schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.strftime("%Y-%m-%d") if context.scheduled_execution_time else "now"
        for key in sorted(context.instance.get_dynamic_partitions(partitions.name)):
            yield dg.RunRequest(run_key=f"{day}:{key}", partition_key=key, tags={"eval/trigger": "nightly"})

    return schedule
