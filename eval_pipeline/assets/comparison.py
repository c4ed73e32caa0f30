"""The ``[suite, comparison]`` asset (and ``[suite, pairwise]`` when the judge compares answers): every model of
the suite against its baseline, item by item, over all model partitions evaluated so far."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import markdown_table, mlflow_run_metadata, preview
from eval_pipeline.assets.partitions import tables_by_model
from eval_pipeline.assets.report_output import stored_run_infos, write_step_report
from eval_pipeline.inference.backends import build_sampler
from eval_pipeline.judging.run import judgment_scores, run_pairwise
from eval_pipeline.judging.setup import judge_label, judge_params
from eval_pipeline.metrics.model_comparison import compare_suite
from eval_pipeline.progress import Progress
from eval_pipeline.resources.generation_cache import GenerationCacheResource
from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tasks.stage_versions import stage_version


def comparison_stages(suite: Suite) -> tuple[str, ...]:
    """The asset stages a comparison asset writes."""
    pairwise = suite.judge is not None and suite.judge.pairwise
    return ("comparison", "pairwise") if pairwise else ("comparison",)


def build_comparison_asset(suite: Suite) -> dg.AssetsDefinition:
    assert suite.baseline is not None
    kind = task_kind(suite)
    baseline, judge, produced = suite.baseline, suite.judge, kind.production_stage
    stages = (produced, "scores", "judgments") if judge else (produced, "scores")
    all_models = {"partition_mapping": dg.AllPartitionMapping(), "metadata": {"allow_missing_partitions": True}}
    ins = {"samples": dg.AssetIn(key=[suite.suite, "samples"])} | {
        stage: dg.AssetIn(key=[suite.suite, stage], **all_models) for stage in stages}
    outs = {"comparison": dg.AssetOut(key=[suite.suite, "comparison"], kinds={"parquet", "mlflow"},
                                      code_version=stage_version(suite, "comparison"),
                                      description=f"Each model minus {baseline}, per metric: paired CI and test.")}
    if "pairwise" in comparison_stages(suite):
        outs["pairwise"] = dg.AssetOut(key=[suite.suite, "pairwise"], kinds={"parquet"},
                                       code_version=stage_version(suite, "pairwise"),
                                       description=f"Each model's answer against {baseline}'s, judged in both "
                                                   "orders; order-inconsistent verdicts are ties.")

    @dg.multi_asset(name=f"{suite.suite}__comparison", outs=outs, ins=ins, group_name=suite.suite, can_subset=False,
                    pool=f"judge-{judge.model.backend}" if judge else None)
    def comparison(context: dg.AssetExecutionContext, mlflow: MlflowTrackingResource,
                   judge_cache: GenerationCacheResource, io_manager: dg.ResourceParam[dg.IOManager],
                   **tables: object) -> Iterator[dg.Output]:
        samples: pd.DataFrame = tables["samples"]  # type: ignore[assignment]
        by_stage = {s: tables_by_model(tables[s], samples) for s in stages}  # type: ignore[arg-type]  # shards joined
        generations = by_stage[produced]
        if baseline not in generations:
            raise dg.Failure(f"the baseline model {baseline!r} has not been evaluated yet: materialize its "
                             f"partition of {suite.suite} first")
        scores = pd.concat([*by_stage["scores"].values(),
                            *(judgment_scores(f) for f in by_stage.get("judgments", {}).values())], ignore_index=True)
        pairwise = _judge_pairs(context, suite, samples, generations, judge_cache) if len(outs) > 1 else None
        table = compare_suite(suite.suite, baseline, scores, pairwise, value_ranges=kind.score_ranges(suite))
        run_id = mlflow.log_comparison(suite.suite, table, pairwise, experiment_name=suite.mlflow_experiment,
                                       tags={"dagster.run_id": context.run.run_id})
        models = list(dict.fromkeys([*(m.name for m in suite.models), *sorted(generations)]))
        report = write_step_report(  # every model evaluated so far and this comparison (not stored yet: handed over)
            context.log, suite, io_manager, mlflow, mlflow_run_id=run_id, models=models,
            pending={((suite.suite, "comparison"), None): table},
            runs=stored_run_infos(context.instance, suite, models))
        yield dg.Output(table, output_name="comparison", metadata={
            "models": sorted(generations), "baseline": baseline, "mlflow_run_id": run_id or "",
            **mlflow_run_metadata(mlflow.tracking_uri, run_id),
            "summary": dg.MetadataValue.md(comparison_summary(table)), **report})
        if pairwise is not None:
            yield dg.Output(pairwise, output_name="pairwise", metadata={
                "errors": int(pairwise["error"].notna().sum()),
                "preview": preview(pairwise, ["sample_id", "model", "model_first", "baseline_first", "winner",
                                              "error"])})

    return comparison


def _judge_pairs(context: dg.AssetExecutionContext, suite: Suite, samples: pd.DataFrame,
                 generations: dict[str, pd.DataFrame], judge_cache: GenerationCacheResource) -> pd.DataFrame:
    assert suite.judge is not None and suite.baseline is not None
    sampler = build_sampler(suite, suite.judge.model, samples)
    cache = judge_cache.open()
    frames = []
    try:
        for model in sorted(m for m in generations if m != suite.baseline):
            progress = Progress(f"{suite.suite}/{model} vs {suite.baseline} pairwise judging", context.log.info)
            try:
                frames.append(run_pairwise(samples, generations[model], generations[suite.baseline], sampler,
                                           judge_params(suite.judge), judge_model=judge_label(suite.judge),
                                           cache=cache, on_progress=progress))
            finally:
                progress.close()
    finally:
        if cache is not None:
            cache.close()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def comparison_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as text cells: model, baseline, metric, values, signed difference, 95% CI, n, test, p and the
    Holm-adjusted p (over each model's metrics)."""
    def fmt(spec: str) -> object:
        return lambda v: "" if pd.isna(v) else format(v, spec)

    return pd.DataFrame({
        "model": table["model"].astype(str), "vs": table["baseline"].astype(str), "metric": table["metric"].astype(str),
        "value": table["model_value"].map(fmt(".3f")), "baseline": table["baseline_value"].map(fmt(".3f")),
        "diff": table["diff"].map(fmt("+.3f")),
        "95% CI": [("" if pd.isna(lo) else f"[{lo:+.3f}, {hi:+.3f}]")
                   for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)],
        "n": table["n"].astype(str), "test": table["test"].astype(str), "p": table["p_value"].map(fmt(".3g")),
        "p (Holm)": (table["p_holm"] if "p_holm" in table.columns else pd.Series(float("nan"), index=table.index))
        .map(fmt(".3g")),
    })


def comparison_summary(table: pd.DataFrame) -> str:
    """Markdown: each model's difference from the baseline per metric, its 95% CI, the test, its p-value and the
    Holm-adjusted p."""
    if table.empty:
        return "_(nothing to compare: evaluate a model besides the baseline)_"
    return markdown_table(comparison_cells(table))
