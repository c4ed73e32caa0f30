"""The ``[suite, judgments]`` asset: the suite's task kind has its judge rate the production table (each generation
on each judge metric; each recorded session on each judged evaluator)."""

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import COST_DIGITS, markdown_table, preview, significant
from eval_pipeline.judging.degenerate import DegenerateJudge, degenerate_judges, flags_markdown
from eval_pipeline.judging.setup import judge_label
from eval_pipeline.progress import Progress
from eval_pipeline.resources.generation_cache import GenerationCacheResource
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tasks.stage_versions import stage_version


def judge_pool(suite: Suite) -> str:
    """Judge requests share a pool per judge backend (``judge-bedrock``), apart from the models' inference."""
    assert suite.judge is not None
    return f"judge-{suite.judge.model.backend}"


def judge_flag_metadata(flags: list[DegenerateJudge]) -> dict[str, object]:
    """Dagster metadata for degenerate-judge flags: ``judge_warnings`` (markdown, "none" when there are none) and
    one ``judge.degenerate.<metric>`` text entry (the reason) per flagged metric."""
    return {"judge_warnings": dg.MetadataValue.md(flags_markdown(flags)),
            **{flag.key: dg.MetadataValue.text(flag.reason) for flag in flags}}


def build_judgments_asset(suite: Suite, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    assert suite.judge is not None
    judge, kind = suite.judge, task_kind(suite)
    produced_stage = kind.production_stage

    @dg.asset(key=[suite.suite, "judgments"], group_name=suite.suite, partitions_def=partitions,
              code_version=stage_version(suite, "judgments"),
              pool=judge_pool(suite), kinds={"parquet"},
              ins={"samples": dg.AssetIn(key=[suite.suite, "samples"]),
                   produced_stage: dg.AssetIn(key=[suite.suite, produced_stage])},
              description="One row per judged item × judge metric (or evaluator): 0–1 score, the rating, the "
                          "judge's explanation.")
    def judgments(context: dg.AssetExecutionContext, samples: pd.DataFrame, judge_cache: GenerationCacheResource,
                  **produced: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        progress = Progress(f"{suite.suite}/{context.partition_key} judging", context.log.info)
        cache = judge_cache.open()
        try:
            frame, stats = kind.judge(suite, samples, produced[produced_stage], cache=cache, on_progress=progress)
        finally:
            progress.close()
            if cache is not None:
                cache.close()
        context.log.info(f"judging {context.partition_key}: {stats.summary()}")
        means = frame.groupby("metric", sort=False).agg(mean=("score", "mean"), errors=("error", "count"))
        return dg.Output(frame, metadata={
            "judge": judge_label(judge), "judge_seed": judge.seed, "judge_temperature": 0.0,
            "judge_verdict": judge.verdict,
            "requests": stats.requests, "cached": stats.cached, "sent": stats.sent, "errors": stats.errors,
            "cost_usd": significant(float(frame["cost_usd"].fillna(0).sum()), COST_DIGITS),
            "means": dg.MetadataValue.md(markdown_table(means.reset_index())),
            **judge_flag_metadata(degenerate_judges(frame)),  # the same-verdict rule; the metrics add the scorers'
            "preview": preview(frame, ["sample_id", "sample_index", "metric", "score", "label", "explanation",
                                       "error"]),
        })

    return judgments
