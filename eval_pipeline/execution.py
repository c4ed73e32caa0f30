"""Running a suite in-process on a Dagster instance, one run per model partition, and collecting results."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg
import pandas as pd

from eval_pipeline import paths
from eval_pipeline.assets.metrics import gate_from_metadata
from eval_pipeline.assets.partitions import (
    add_partitions,
    model_partitions,
    partition_shard,
    register_declared_models,
    shard_keys,
)
from eval_pipeline.assets.samples import refuse_empty_local_file, require_items
from eval_pipeline.assets.suite_assets import model_stages, shard_stages, suite_comparison_stages
from eval_pipeline.automation.jobs import aggregate_job_name, compare_job_name, eval_job_name
from eval_pipeline.errors import EvalInputError, input_error_in
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.planning import GenerationPlan
from eval_pipeline.judging.degenerate import FLAG_PREFIX
from eval_pipeline.metrics.gates import GateResult
from eval_pipeline.report import RunInfo, write_suite_report
from eval_pipeline.resources.mlflow_tracking import logging_helper
from eval_pipeline.resources.parquet_io import ParquetIOManager
from eval_pipeline.stale_runs import end_orphaned_mlflow_runs, fail_orphaned_runs, process_tags
from eval_pipeline.suite_definitions import build_definitions, default_resources
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tasks.base import suite_samples

logger = logging.getLogger(__name__)


@dataclass
class ModelRun:
    model: str
    dagster_run_id: str
    success: bool
    error: str | None = None
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    generation: dict[str, Any] = field(default_factory=dict)
    """The production stage's metadata: its counts, as the suite's task kind gives them (requests, cached and
    generated for generations; rollouts, from_store, ran, errors, budget_errors, … for rollouts)."""
    production_stage: str = "generations"
    """The production stage's name (``generations``, ``rollouts``): the task kind's ``production_stage``."""
    production_summary: str = ""
    """The line the task kind logged when the production stage was done (``Production.summary``)."""
    judging: dict[str, Any] = field(default_factory=dict)
    """The judgments stage's counts (requests, cached, sent, errors), when the suite has a judge."""
    mlflow_run_id: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)
    """The release gates evaluated in this run (passed or not); a failed one fails the run."""
    judge_warnings: dict[str, str] = field(default_factory=dict)
    """The degenerate-judge warnings of the metrics step: judge metric -> reason."""

    @property
    def failed_gates(self) -> list[GateResult]:
        return [gate for gate in self.gates if not gate.passed]


@dataclass
class SuiteRun:
    suite: str
    models: list[ModelRun]
    comparison: ModelRun | None = None
    """The run of the ``<suite>_compare`` job (models against the baseline), when the suite has a baseline."""
    comparison_skipped: str | None = None
    """Why the suite's comparison did not run (a model's run or gate failed)."""
    report: str | None = None
    """The suite's report written at the end of the run (a path or ``s3://`` URI); None when none was written."""

    @property
    def success(self) -> bool:
        return all(m.success for m in self.models) and (self.comparison is None or self.comparison.success)

    @property
    def gates(self) -> list[GateResult]:
        return [gate for m in self.models for gate in m.gates]

    @property
    def metrics(self) -> pd.DataFrame:
        frames = [m.metrics for m in self.models if not m.metrics.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_suite(suite: Suite, instance: dg.DagsterInstance, *, models: list[str] | None = None,
              limit: int | None = None, resources: dict[str, Any] | None = None,
              log_level: str = "WARNING", tags: dict[str, str] | None = None) -> SuiteRun:
    """Materialize every stage of the suite for each model, in this process (each Dagster run tagged ``tags``),
    then, when the suite has a baseline, compare the models with it. MLflow is imported and its store opened
    meanwhile by a helper process that then does the run's logging (``logging_helper``)."""
    _model_names(suite, models)  # bad input fails before the helper starts
    refuse_empty_local_file(suite.resolve_uri(suite.dataset.uri))  # exit 2 at load; other sources: samples step
    resources = resources or default_resources()
    with logging_helper(resources):
        return _run_suite(suite, instance, models=models, limit=limit, resources=resources, log_level=log_level,
                          tags=tags)


def _run_suite(suite: Suite, instance: dg.DagsterInstance, *, models: list[str] | None, limit: int | None,
               resources: dict[str, Any], log_level: str, tags: dict[str, str] | None) -> SuiteRun:
    run_tags = {**process_tags(), **(tags or {})}
    names = _model_names(suite, models)
    definitions = build_definitions([suite], resources)
    job = definitions.resolve_job_def(eval_job_name(suite))
    register_declared_models(instance, suite)
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if limit is not None:
        run_config["ops"] = {_node(suite, "samples"): {"config": {"limit": limit}}}
    io_manager: ParquetIOManager = resources["io_manager"]
    fail_orphaned_runs(instance)
    end_orphaned_mlflow_runs(resources)
    add_partitions(instance, model_partitions(suite).name, names)
    runs = []
    for name in names:
        if suite.shards > 1:  # each shard of the model in turn, then the model's aggregation
            runs.append(_run_sharded(suite, name, definitions, instance, run_config, run_tags, io_manager))
            continue
        result = job.execute_in_process(instance=instance, partition_key=name, run_config=run_config,
                                        raise_on_error=False, tags=run_tags)
        runs.append(_collect(suite, name, result, io_manager))
    comparison, skipped = None, None
    failed = [r.model for r in runs if not r.success]
    if suite.baseline is not None and any(r.model == suite.baseline for r in runs):
        if failed:  # a failed gate is not compared (Dagster would not run it downstream of a blocking check)
            skipped = f"not compared with the baseline: the run of {', '.join(failed)} failed"
        else:
            result = definitions.resolve_job_def(compare_job_name(suite)).execute_in_process(
                instance=instance, run_config={"loggers": run_config["loggers"]}, raise_on_error=False,
                tags=run_tags)
            comparison = _collect_comparison(suite, result, io_manager)
    done = SuiteRun(suite.suite, runs, comparison, skipped)
    done.report = write_run_report(suite, done, io_manager)
    return done


def write_run_report(suite: Suite, run: SuiteRun, reader: ParquetIOManager) -> str | None:
    """The suite's report of this run's models (those with metrics), with their runs, gates and judge warnings, and
    the comparison when there is one; its path, or None when no model has metrics or it could not be written (a
    warning with the reason: the numbers are stored)."""
    models = [m.model for m in run.models if not m.metrics.empty]
    if not models:
        return None
    try:
        return write_suite_report(suite, reader, models=models, runs={m.model: run_info(m) for m in run.models})
    except Exception as exc:  # the page is a view of stored tables: it never fails the evaluation
        logger.warning("the report of %s was not written: %s: %s", suite.suite, type(exc).__name__, exc)
        return None


def run_info(run: ModelRun) -> RunInfo:
    """What the report shows of a model's run besides its tables: its Dagster and MLflow runs, gates, judge
    warnings."""
    return RunInfo(dagster_run_id=run.dagster_run_id, mlflow_run_id=run.mlflow_run_id,
                   gates=[gate.as_dict() for gate in run.gates],
                   judge_warnings=[{"metric": metric, "reason": reason}
                                   for metric, reason in run.judge_warnings.items()])


def plan_suite(suite: Suite, *, models: list[str] | None = None, limit: int | None = None) -> list[GenerationPlan]:
    """What ``run_suite`` would send, per model, without sending anything (credentials are checked); with the
    judge's requests for the model's answers when the suite has a judge and its task kind can plan them
    (``plan_judge``)."""
    uri = suite.resolve_uri(suite.dataset.uri)
    samples = require_items(suite_samples(suite, limit), uri)
    kind = task_kind(suite)
    plan_judge = getattr(kind, "plan_judge", None) if suite.judge is not None else None
    cache = RequestCache(paths.generation_cache_location())
    judge_cache = RequestCache(paths.judge_cache_location()) if plan_judge is not None else None
    try:
        plans = []
        for name in _model_names(suite, models):
            plan = kind.plan(suite, suite.model(name), samples, cache)
            if plan_judge is not None:
                plan = replace(plan, judge=plan_judge(suite, suite.model(name), samples, cache, judge_cache))
            plans.append(plan)
        return plans
    finally:
        cache.close()
        if judge_cache is not None:
            judge_cache.close()


def _model_names(suite: Suite, models: list[str] | None) -> list[str]:
    """The requested models (all declared ones by default), the release gates' baseline first (every other model's
    gate compares with its scores); an unknown name is an input error."""
    names = models or [m.name for m in suite.models]
    for name in names:
        try:
            suite.model(name)
        except KeyError as exc:
            raise EvalInputError(str(exc.args[0]), file=suite.source_path, field="models") from None
    baseline = suite.gates.baseline if suite.gates is not None else None
    return sorted(names, key=lambda name: name != baseline)  # stable: the others keep their order


def _node(suite: Suite, stage: str) -> str:
    return f"{suite.suite}__{stage}"


def _collect(suite: Suite, model: str, result: dg.ExecuteInProcessResult, io_manager: ParquetIOManager) -> ModelRun:
    outputs = {"samples": io_manager.path_for([suite.suite, "samples"])}
    outputs |= {stage: io_manager.path_for([suite.suite, stage], model) for stage in model_stages(suite)[1:]}
    run = ModelRun(model=model, dagster_run_id=result.run_id, success=result.success, outputs=outputs,
                   gates=run_gates(result))
    if run.failed_gates:
        run.success = False
        run.error = "; ".join(f"gate {gate.summary()}" for gate in run.failed_gates)
    elif not result.success:
        _raise_input_error(result)
        run.error = _failure_message(result)
        return run
    if not result.asset_materializations_for_node(_node(suite, "metrics")):
        return run
    kind = task_kind(suite)
    production = _metadata(result, _node(suite, kind.production_stage))
    run.production_stage, run.production_summary = kind.production_stage, str(production.pop("summary", "") or "")
    run.generation = production
    run.judging = {key: value for key, value in _metadata(result, _node(suite, "judgments")).items()
                   if key in ("requests", "cached", "sent", "errors")}
    metrics = _metadata(result, _node(suite, "metrics"))
    run.mlflow_run_id = metrics.get("mlflow_run_id") or None
    run.judge_warnings = {key.removeprefix(FLAG_PREFIX): str(value) for key, value in metrics.items()
                          if key.startswith(FLAG_PREFIX)}
    run.metrics = pd.read_parquet(outputs["metrics"])
    return run


def _run_sharded(suite: Suite, model: str, definitions: dg.Definitions, instance: dg.DagsterInstance,
                 run_config: dict[str, Any], tags: dict[str, str], io_manager: ParquetIOManager) -> ModelRun:
    """One model of a sharded suite: a run of the eval job per model × shard partition (samples and the per-item
    stages), then, when every shard succeeded, the aggregate job's run of the model (its metrics and gates)."""
    job = definitions.resolve_job_def(eval_job_name(suite))
    shard_runs = []
    for key in shard_keys(suite, model):
        result = job.execute_in_process(instance=instance, partition_key=key, run_config=run_config,
                                        raise_on_error=False, tags=tags)
        shard_runs.append(result)
        if not result.success:
            _raise_input_error(result)
            return ModelRun(model=model, dagster_run_id=result.run_id, success=False,
                            error=f"shard {partition_shard(key)}: {_failure_message(result)}",
                            outputs=_sharded_outputs(suite, model, io_manager))
    aggregate = definitions.resolve_job_def(aggregate_job_name(suite)).execute_in_process(
        instance=instance, partition_key=model, run_config={"loggers": run_config["loggers"]},
        raise_on_error=False, tags=tags)
    run = _collect(suite, model, aggregate, io_manager)
    run.outputs = _sharded_outputs(suite, model, io_manager)
    kind = task_kind(suite)  # every shard ran: the production and judging counts are theirs, summed
    productions = [_metadata(r, _node(suite, kind.production_stage)) for r in shard_runs]
    summaries = [str(p.pop("summary", "") or "") for p in productions]
    run.production_stage = kind.production_stage
    run.production_summary = "; ".join(f"shard {i}: {line}" for i, line in enumerate(summaries) if line)
    run.generation = summed_counts(productions)
    judging = summed_counts([_metadata(r, _node(suite, "judgments")) for r in shard_runs])
    run.judging = {key: value for key, value in judging.items() if key in ("requests", "cached", "sent", "errors")}
    return run


def _sharded_outputs(suite: Suite, model: str, io_manager: ParquetIOManager) -> dict[str, str]:
    """A sharded model's files: the samples and metrics tables, each per-item stage's folder of shards, and each
    shard's file (``<stage>/<shard>``)."""
    outputs = {"samples": io_manager.path_for([suite.suite, "samples"])}
    for stage in shard_stages(suite):
        outputs[stage] = io_manager.path_for([suite.suite, stage], model).removesuffix(".parquet")
        for shard in range(suite.shards):
            outputs[f"{stage}/{shard}"] = io_manager.path_for([suite.suite, stage, model], str(shard))
    outputs["metrics"] = io_manager.path_for([suite.suite, "metrics"], model)
    return outputs


def summed_counts(metadata: list[dict[str, Any]]) -> dict[str, Any]:
    """A stage's metadata over its shards: counts (integers) and costs (``*_usd``) summed, a label (text) kept
    when every shard agrees; other figures (a median latency, a rate) are left out, as no sum gives them."""
    summed: dict[str, Any] = {}
    for key in dict.fromkeys(k for entry in metadata for k in entry):
        values = [entry[key] for entry in metadata if key in entry]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            summed[key] = sum(values)
        elif key.endswith("_usd") and all(isinstance(v, int | float) for v in values):
            summed[key] = float(sum(values))
        elif all(isinstance(v, str) for v in values) and len(set(values)) == 1:
            summed[key] = values[0]
    return summed


def _collect_comparison(suite: Suite, result: dg.ExecuteInProcessResult, io_manager: ParquetIOManager) -> ModelRun:
    outputs = {stage: io_manager.path_for([suite.suite, stage]) for stage in suite_comparison_stages(suite)}
    run = ModelRun(model=f"{suite.suite}/comparison", dagster_run_id=result.run_id, success=result.success,
                   outputs=outputs)
    if not result.success:
        run.error = _failure_message(result)
        return run
    node = _node(suite, "comparison")
    run.mlflow_run_id = _metadata(result, node).get("mlflow_run_id") or None
    run.metrics = pd.read_parquet(outputs["comparison"])
    return run


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    materializations = result.asset_materializations_for_node(node)
    if not materializations:
        return {}
    return {key: getattr(value, "value", value) for key, value in materializations[-1].metadata.items()
            if not key.startswith("dagster/")}  # Dagster's own entries (the column schema) are no counts


def run_gates(result: dg.ExecuteInProcessResult) -> list[GateResult]:
    """The gate results of a run's asset checks (a blocking check that failed has failed the run)."""
    gates = []
    for evaluation in result.get_asset_check_evaluations():
        gate = gate_from_metadata(dict(evaluation.metadata))
        if gate is not None:
            gates.append(gate)
    return gates


def _raise_input_error(result: dg.ExecuteInProcessResult) -> None:
    """A bad input found by a step (the dataset, a responses file: before anything is sent) is raised as the
    input error it is."""
    for event in result.get_step_failure_events():
        message = input_error_in(event.step_failure_data.error) if event.step_failure_data else None
        if message is not None:
            raise EvalInputError(message)


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                return f"{event.step_key}: {error.message.strip()}"
    return "the run failed (see the Dagster run logs)"
