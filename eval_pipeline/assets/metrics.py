"""The ``[suite, metrics]`` asset: aggregation, the error-rate check, and the MLflow run."""

import dagster as dg
import pandas as pd

from eval_pipeline.assets.judgments import judge_flag_metadata
from eval_pipeline.assets.metadata import (
    GATES_KEY,
    gates_markdown,
    metric_values,
    metrics_summary,
    mlflow_run_metadata,
    preview,
)
from eval_pipeline.assets.partitions import aggregation_condition, model_table, partition_model, shard_mapping
from eval_pipeline.assets.release_gate import evaluate_release_gate
from eval_pipeline.assets.report_output import run_info, stored_run_infos, write_step_report
from eval_pipeline.assets.run_tags import tag_run
from eval_pipeline.assets.samples import dataset_digest
from eval_pipeline.judging.degenerate import degenerate_judges
from eval_pipeline.judging.quality import judge_agreement
from eval_pipeline.judging.run import judgment_scores
from eval_pipeline.judging.setup import judge_record, suite_judge_metrics
from eval_pipeline.metrics.gates import ERROR_RATE_GATE, GATE_METADATA_KEY, GateResult, error_rate_gate
from eval_pipeline.report import RunInfo
from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tasks.stage_versions import stage_version
from eval_pipeline.tracking import EvaluationRecord
from eval_pipeline.tracking.run_labels import run_labels

ERROR_RATE_CHECK = ERROR_RATE_GATE


def metric_inputs(suite: Suite) -> tuple[str, ...]:
    stages = ("samples", task_kind(suite).production_stage, "scores")
    return (*stages, "judgments") if suite.judge else stages


def build_metrics_asset(suite: Suite, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey([suite.suite, "metrics"])
    kind = task_kind(suite)

    @dg.asset(key=key, group_name=suite.suite, partitions_def=partitions, kinds={"parquet", "mlflow"},
              code_version=stage_version(suite, "metrics"),
              ins={stage: dg.AssetIn(key=[suite.suite, stage], **({} if stage == "samples" else shard_mapping(suite)))
                   for stage in metric_inputs(suite)},
              automation_condition=aggregation_condition(suite),
              check_specs=[dg.AssetCheckSpec(ERROR_RATE_CHECK, asset=key, blocking=True,
                                             description=f"Share of errored metric inputs (score and judgment "
                                                         f"rows) ≤ {suite.max_error_rate}, and no metric with "
                                                         f"n = 0; a failure fails the run")],
              description="Per metric (and breakdown value): mean, stderr, 95% CI, n, errors; logged to MLflow.")
    def metrics(context: dg.AssetExecutionContext, mlflow: MlflowTrackingResource,
                io_manager: dg.ResourceParam[dg.IOManager], **tables: pd.DataFrame):
        model = suite.model(partition_model(context.partition_key))
        tables = whole_tables(tables)  # a sharded suite's stages arrive as all shards of the model: put together
        tag_run(context, suite.suite)  # a UI launch gets the suite/model tags a CLI run has
        samples, generations, scores = tables["samples"], tables[kind.production_stage], tables["scores"]
        judgments = tables.get("judgments")
        if judgments is not None:
            scores = pd.concat([scores, judgment_scores(judgments)], ignore_index=True)
        table = kind.aggregate(suite, samples, generations, scores)
        params: dict[str, object] = {
            "model": model.model_dump(exclude_none=True), "generation": suite.generation.model_dump(),
            **kind.params(suite), "dataset": suite.dataset.model_dump()}
        if judgments is not None and suite.judge is not None:
            judge_metrics = suite_judge_metrics(suite) if getattr(kind, "reads_judge_metrics", True) else []
            table = pd.concat([table, judge_agreement(suite.suite, model.name, samples, judgments, judge_metrics,
                                                      suite.judge.human_labels)], ignore_index=True)
            params["judge"] = judge_record(suite.judge, judge_metrics)
        gate = error_rate_gate(model.name, generations, tables["scores"], judgments, table, suite.max_error_rate,
                               stage=kind.production_stage)
        flags = degenerate_judges(judgments, tables["scores"])  # a warning: tagged and shown, never a failure
        labels = run_labels(context.run.tags)  # an SDK launch's MLflow run name and tags
        run_id = mlflow.log(EvaluationRecord(
            suite=suite.suite, model=model.name, params=params,
            dataset_uri=suite.resolve_uri(suite.dataset.uri), dataset_digest=dataset_digest(samples),
            samples=samples, items=kind.items(samples, generations, scores, judgments), metrics=table,
            tags={**labels.tags, "dagster.run_id": context.run.run_id, "dagster.partition": model.name,
                  **{flag.key: flag.reason for flag in flags}}, run_name=labels.run_name(model.name),
            usage=kind.usage(generations), failed_gates={} if gate.passed else {gate.check: gate.reason or ""},
            started_at=getattr(context.instance.get_run_record_by_id(context.run.run_id), "start_time", None),
            source=suite.source_path), experiment_name=suite.mlflow_experiment)
        if run_id:
            mlflow.log_extras(kind, run_id, generations, tables["scores"], judgments, samples=samples)
        export = getattr(kind, "export", None)  # results sent elsewhere (a traces suite's result events)
        exported = export(suite, context.run.run_id, tables["scores"], judgments) if export is not None else {}
        gates = [gate, *release_gates(suite, io_manager, model.name)]  # the release gate's verdict, as its check has it
        report = metrics_report(context, suite, io_manager, mlflow, model.name, table,
                                run_info(context.run.run_id, run_id, gates, [(f.metric, f.reason) for f in flags]))
        yield dg.Output(table, metadata={
            **exported,
            "summary": dg.MetadataValue.md(metrics_summary(table)),
            **({} if gate.observed is None else {"error_rate": gate.observed}),
            "mlflow_run_id": run_id or "",
            **mlflow_run_metadata(mlflow.tracking_uri, run_id),
            **metric_values(table),  # numeric: the UI charts each across materializations
            **judge_flag_metadata(flags),
            GATES_KEY: dg.MetadataValue.md(gates_markdown(gates)),
            **report,
            "preview": preview(table),
        })
        yield gate_check_result(gate)

    return metrics


def release_gates(suite: Suite, io_manager: object, model: str) -> list[GateResult]:
    """The model's release gate (none without ``gates``), evaluated as its blocking check evaluates it, so the
    verdict shows on the metrics materialization too."""
    if suite.gates is None or not hasattr(io_manager, "read_model_stage"):
        return []
    return [evaluate_release_gate(suite, io_manager, model)]  # type: ignore[arg-type]


def metrics_report(context: dg.AssetExecutionContext, suite: Suite, io_manager: object,
                   mlflow: MlflowTrackingResource, model: str, table: pd.DataFrame,
                   run: RunInfo) -> dict[str, dg.MetadataValue]:
    """The suite's report written by a model's metrics step (its table not stored yet: handed over), added to the
    model's MLflow run: the suite's declared models evaluated so far (their runs as last materialized) and this one
    (``run``). Returns the ``report`` metadata entry (none when it could not be written: a warning)."""
    models = list(dict.fromkeys([*(m.name for m in suite.models), model]))
    others = [name for name in models if name != model]
    return write_step_report(context.log, suite, io_manager, mlflow, mlflow_run_id=run.mlflow_run_id,
                             pending={((suite.suite, "metrics"), model): table}, models=models,
                             runs={**stored_run_infos(context.instance, suite, others), model: run})


def whole_tables(tables: dict[str, object]) -> dict[str, pd.DataFrame]:
    """The metrics asset's inputs, each stage one model's whole table: the shards of a sharded suite (a dict by
    partition key) concatenated in the items' order, so the numbers are those of one unsharded run."""
    samples = tables["samples"]
    assert isinstance(samples, pd.DataFrame)
    return {stage: model_table(table, samples) for stage, table in tables.items()}  # type: ignore[arg-type]


def gate_check_result(gate: GateResult) -> dg.AssetCheckResult:
    """The asset check of a gate: ERROR severity (the check is blocking: a failure fails the run), the reason as
    its description, and the whole result under ``gate`` for the CLI and the SDK."""
    metadata: dict[str, object] = {} if gate.observed is None else {"error_rate": gate.observed}
    metadata |= {"max_error_rate": gate.allowed}
    metadata |= {key: value for key, value in gate.detail.items() if isinstance(value, int)}
    metadata[GATE_METADATA_KEY] = dg.MetadataValue.json(gate.as_dict())
    return dg.AssetCheckResult(check_name=gate.check, passed=gate.passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=gate.reason or gate.summary(), metadata=metadata)


def gate_from_metadata(metadata: dict[str, object]) -> GateResult | None:
    """The gate result stored in a check evaluation's metadata (None for checks that carry none)."""
    value = metadata.get(GATE_METADATA_KEY)
    data = getattr(value, "data", value)
    return GateResult.from_dict(data) if isinstance(data, dict) else None
