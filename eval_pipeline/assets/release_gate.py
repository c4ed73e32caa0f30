"""The ``release_gate`` asset check on ``[suite, metrics]``: a model against the suite's pinned baseline
(``metrics/release_gates.py``), blocking, partitioned by model.

It reads only the two partitions it compares (the model's and the baseline's scores and judgments, all shards of
each, through the IO manager's ``read_model_stage``), never every partition of the stage. A failure (ERROR
severity, blocking) fails the run and skips everything downstream of the metrics (the ``promotion`` asset), and
fails the model's MLflow evaluation run too (FAILED, tagged ``gate.failed`` and ``gate.release_gate`` as a failed
error-rate gate is); the whole result is stored under ``gate`` in the check's metadata, where the CLI and the SDK
read it.
"""


import warnings
from typing import Any

import dagster as dg
import pandas as pd

from eval_pipeline.assets.partitions import model_partitions
from eval_pipeline.judging.run import judgment_scores
from eval_pipeline.metrics.gates import GATE_METADATA_KEY, GateResult
from eval_pipeline.metrics.release_gates import RELEASE_GATE, MetricRule, baseline_gate, release_gate
from eval_pipeline.resources.parquet_io import StageReader
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind
from eval_pipeline.tracking.mlflow_log import record_gate_verdict


def gate_rules(suite: Suite) -> list[MetricRule]:
    assert suite.gates is not None
    return [MetricRule(name, spec.rule, spec.threshold) for name, spec in suite.gates.metrics.items()]  # type: ignore[arg-type]


def build_release_gate_check(suite: Suite) -> dg.AssetChecksDefinition:
    gates = suite.gates
    assert gates is not None
    rules = gate_rules(suite)
    described = ", ".join(f"{r.metric} {r.rule.replace('_', ' ')} {r.threshold:g}" for r in rules)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitions_def on an asset check: preview in 1.13
        decorate = dg.asset_check(
            asset=dg.AssetKey([suite.suite, "metrics"]), name=RELEASE_GATE, blocking=True,
            partitions_def=model_partitions(suite), required_resource_keys={"io_manager", "mlflow"},
            description=f"Against the baseline {gates.baseline}, paired by item, Holm over the gated metrics at "
                        f"α = {gates.alpha:g}: {described}. A failure fails the run and blocks promotion.")

    def release_gate_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        model = context.partition_key
        gate = evaluate_release_gate(suite, stage_reader(context.resources.io_manager), model)
        run_id = evaluation_run_id(context.instance, dg.AssetKey([suite.suite, "metrics"]), model)
        if run_id and model != gates.baseline:  # the verdict on the model's evaluation run in MLflow
            record_release_gate(context.resources.mlflow.tracking_uri, run_id, gate)
        return release_gate_result(gate)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return decorate(release_gate_check)


def evaluate_release_gate(suite: Suite, reader: StageReader, model: str) -> GateResult:
    """The model's release gate from the stored scores of the model and the baseline (the baseline's own passes
    trivially; a baseline never evaluated fails every other model's gate, saying so)."""
    gates = suite.gates
    assert gates is not None
    rules = gate_rules(suite)
    if model == gates.baseline:
        return baseline_gate(model, rules, alpha=gates.alpha)
    baseline_scores = model_item_scores(reader, suite, gates.baseline)
    if baseline_scores is None:
        return GateResult(check=RELEASE_GATE, model=model, passed=False, observed=None, allowed=0.0,
                          reason=f"the baseline {gates.baseline!r} has not been evaluated yet: evaluate it first",
                          detail={"baseline": gates.baseline, "alpha": gates.alpha, "metrics": {}})
    model_scores = model_item_scores(reader, suite, model)
    return release_gate(model, gates.baseline, model_scores if model_scores is not None else baseline_scores[:0],
                        baseline_scores, rules, alpha=gates.alpha, max_unpaired=gates.max_unpaired,
                        value_ranges=task_kind(suite).score_ranges(suite))


def evaluation_run_id(instance: dg.DagsterInstance, metrics_key: dg.AssetKey, model: str) -> str | None:
    """The MLflow run of the model's latest metrics materialization."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=metrics_key, asset_partitions=[model]),
                                              limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("mlflow_run_id")
    return str(getattr(value, "value", value) or "") or None


def record_release_gate(tracking_uri: str, run_id: str, gate: GateResult) -> None:
    """The verdict on the model's MLflow evaluation run, recorded as the error-rate gate records one (a failed gate
    fails the run everywhere it is reported): failed, the run ends FAILED and is tagged ``gate.failed`` and
    ``gate.release_gate`` (the reason); passed, ``gate.release_gate`` is ``passed``."""
    from mlflow.tracking import MlflowClient

    from eval_pipeline.tracking.sagemaker_arn import arn_tracking_scope

    with arn_tracking_scope(tracking_uri):  # a SageMaker MLflow ARN: the plugin signs with MLflow's tracking URI
        record_gate_verdict(MlflowClient(tracking_uri=tracking_uri), run_id, RELEASE_GATE,
                            None if gate.passed else gate.reason or gate.summary())


def stage_reader(io_manager: StageReader) -> StageReader:
    """What reads the stored stages for a check or an asset: the run's IO manager itself. Dagster hands them the
    manager the ``ParquetIOManager`` factory created, which reads a model's stage as the factory does."""
    if not isinstance(io_manager, StageReader):
        raise TypeError(f"the release gate reads stored stages through the Parquet IO manager; the run's "
                        f"io_manager is a {type(io_manager).__name__}")
    return io_manager


def model_item_scores(reader: StageReader, suite: Suite, model: str) -> pd.DataFrame | None:
    """One model's per-item scores: its scores table and, with a judge, its judgments as scores (all shards);
    None when its scores were never materialized."""
    scores = reader.read_model_stage([suite.suite, "scores"], model)
    if scores is None:
        return None
    frames = [scores]
    if suite.judge is not None:
        judgments = reader.read_model_stage([suite.suite, "judgments"], model)
        if judgments is not None:
            frames.append(judgment_scores(judgments))
    return pd.concat(frames, ignore_index=True)


def release_gate_result(gate: GateResult) -> dg.AssetCheckResult:
    """ERROR severity (blocking: a failure fails the run), the reason as the description, per metric numbers as
    numeric metadata (the UI charts them), and the whole result under ``gate``."""
    metadata: dict[str, Any] = {} if gate.observed is None else {"failed_metrics": int(gate.observed)}
    for metric, verdict in gate.detail.get("metrics", {}).items():
        for key in ("diff", "ci_low", "ci_high", "p_value", "p_holm", "mde", "threshold"):
            if verdict.get(key) is not None:
                metadata[f"{metric}.{key}"] = float(verdict[key])
        metadata[f"{metric}.n"] = int(verdict["n"])
        metadata[f"{metric}.unpaired"] = int(verdict["unpaired"])
    metadata[GATE_METADATA_KEY] = dg.MetadataValue.json(gate.as_dict())
    description = gate.reason or gate.detail.get("note") or f"{gate.check} passed for {gate.model}"
    return dg.AssetCheckResult(check_name=RELEASE_GATE, passed=gate.passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=description, metadata=metadata)
