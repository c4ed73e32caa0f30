"""The ``[suite, promotion]`` asset: what a model whose release gates passed gets (``promote`` in the suite).

Partitioned by model and downstream of ``[suite, metrics]``, whose blocking ``release_gate`` (and ``error_rate``)
checks must pass for it to run in the same run; launched on its own (the UI, automation) it evaluates the release
gate again from the stored scores and refuses to promote a model that fails it. It moves an MLflow alias and
sets tags on the model's registered version (``MlflowClient``) and/or approves its SageMaker model package (boto3),
records what it did as metadata, and tags the model's evaluation run in MLflow with it (``eval.promotion``).
The baseline is the reference and is not promoted.
"""


import json
from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import aggregation_condition, model_partitions
from eval_pipeline.assets.release_gate import evaluate_release_gate, evaluation_run_id, stage_reader
from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tracking.promotion import approve_model_package, promote_model_version, promotion_targets

PROMOTION_TAG = "eval.promotion"


def build_promotion_asset(suite: Suite) -> dg.AssetsDefinition:
    promote, gates = suite.promote, suite.gates
    assert promote is not None and gates is not None
    metrics_key = dg.AssetKey([suite.suite, "metrics"])
    actions = [f"alias {promote.mlflow_alias}" if promote.mlflow_alias else "",
               f"tags {sorted(promote.mlflow_tags)}" if promote.mlflow_tags else "",
               "SageMaker approval" if promote.sagemaker_approve else ""]

    @dg.asset(key=[suite.suite, "promotion"], group_name=suite.suite, partitions_def=model_partitions(suite),
              deps=[metrics_key], required_resource_keys={"io_manager", "mlflow"},
              automation_condition=aggregation_condition(suite),  # sharded: follows the model's aggregation
              kinds={"mlflow", "sagemaker"} if promote.sagemaker_approve else {"mlflow"},
              description=f"Promote a model whose release gates against {gates.baseline} passed: "
                          f"{', '.join(a for a in actions if a)}. Runs only when the blocking gates pass.")
    def promotion(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model, mlflow = context.partition_key, context.resources.mlflow
        if model == gates.baseline:
            return dg.MaterializeResult(metadata={"promoted": False, "note": f"{model} is the baseline: not promoted"})
        # launched on its own (not after the blocking check in the same run), the gate is evaluated again here
        gate = evaluate_release_gate(suite, stage_reader(context.resources.io_manager), model)
        if not gate.passed:
            raise dg.Failure(f"not promoted: {gate.summary()}",
                             metadata={"gate": dg.MetadataValue.json(gate.as_dict())})
        spec = suite.model(model)
        targets = promotion_targets(model, spec.model, promote.targets, context.run.tags)
        done: list[dict[str, Any]] = []
        description = (f"release gates of {suite.suite} passed against {gates.baseline} "
                       f"(Dagster run {context.run.run_id})")
        for target in targets:
            if target.kind == "mlflow" and (promote.mlflow_alias or promote.mlflow_tags):
                done.append({"target": target.uri, "found_in": target.source,
                             **promote_model_version(_registry(suite, mlflow), target.uri,
                                                     alias=promote.mlflow_alias, tags=promote.mlflow_tags)})
            elif target.kind == "sagemaker" and promote.sagemaker_approve:
                done.append({"target": target.uri, "found_in": target.source,
                             **approve_model_package(_sagemaker(suite), target.uri, description)})
        summary = json.dumps(done) if done else "no registry entry to promote (no promote.targets entry, models:/ "\
                                                 "URI or model package ARN for this model)"
        run_id = evaluation_run_id(context.instance, metrics_key, model)
        if run_id:
            _tag_run(mlflow.tracking_uri, run_id, summary)
        context.log.info(f"{suite.suite}/{model} promotion: {summary}")
        return dg.MaterializeResult(metadata={"promoted": bool(done), "actions": dg.MetadataValue.json(done),
                                              "summary": summary, "mlflow_run_id": run_id or ""})

    return promotion


def _registry(suite: Suite, mlflow: MlflowTrackingResource) -> Any:
    from mlflow.tracking import MlflowClient

    assert suite.promote is not None
    uri = suite.promote.tracking_uri or (suite.watch.tracking_uri if suite.watch and suite.watch.mlflow_model
                                         else None) or mlflow.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _sagemaker(suite: Suite) -> Any:
    import boto3

    assert suite.promote is not None
    region = suite.promote.region or (suite.watch.region if suite.watch else None)
    return boto3.client("sagemaker", region_name=region)


def _tag_run(tracking_uri: str, run_id: str, summary: str) -> None:
    from mlflow.tracking import MlflowClient

    from eval_pipeline.tracking.sagemaker_arn import arn_tracking_scope

    with arn_tracking_scope(tracking_uri):  # a SageMaker MLflow ARN: the plugin signs with MLflow's tracking URI
        MlflowClient(tracking_uri=tracking_uri).set_tag(run_id, PROMOTION_TAG, summary[:5000])
