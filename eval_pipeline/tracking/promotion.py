"""Promoting a model whose release gates passed: move an MLflow alias / set tags on its registered model version,
approve its SageMaker model package. No Dagster here: the ``[suite, promotion]`` asset calls these with the real
clients (``MlflowClient``, boto3's ``sagemaker``), and records what they return.

A model's registry entry (``promotion_targets``) comes from, in order: the suite's ``promote.targets`` entry for
it; its ``model`` field when that is a ``models:/`` URI or a model package ARN (a watched MLflow model's location
is ``models:/<name>/<version>``); the checkpoint sensor's run tag ``eval/checkpoint_uri`` (a watched SageMaker
package's ARN, a watched MLflow version's ``models:/`` URI).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHECKPOINT_URI_TAG = "eval/checkpoint_uri"
MODEL_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[^:]*:\d*:model-package/.+")
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))$")


@dataclass(frozen=True)
class PromotionTarget:
    kind: str
    """``mlflow`` (a registered model version) or ``sagemaker`` (a model package)."""
    uri: str
    source: str
    """Where it was found: ``promote.targets``, ``model``, or the run tag."""


def promotion_targets(model: str, model_field: str | None, targets: Mapping[str, str | list[str]],
                      run_tags: Mapping[str, str]) -> list[PromotionTarget]:
    """The model's registry entries, first found per kind (module doc)."""
    listed = targets.get(model) or []
    candidates = [(uri, "promote.targets") for uri in ([listed] if isinstance(listed, str) else listed)]
    candidates += [(model_field, "model"), (run_tags.get(CHECKPOINT_URI_TAG), f"run tag {CHECKPOINT_URI_TAG}")]
    found: dict[str, PromotionTarget] = {}
    for uri, source in candidates:
        kind = target_kind(uri)
        if kind is not None and kind not in found:
            found[kind] = PromotionTarget(kind, str(uri), source)
    return list(found.values())


def target_kind(uri: str | None) -> str | None:
    if not uri:
        return None
    if MODELS_URI.match(uri):
        return "mlflow"
    if MODEL_PACKAGE_ARN.match(uri):
        return "sagemaker"
    return None


def promote_model_version(client: Any, uri: str, *, alias: str | None, tags: Mapping[str, str]) -> dict[str, Any]:
    """Move ``alias`` to the version ``uri`` names (``models:/<name>/<version>`` or ``@<alias>``, resolved now) and
    set ``tags`` on it; returns what was done."""
    match = MODELS_URI.match(uri)
    if match is None:
        raise ValueError(f"not a models:/ URI: {uri!r}")
    name, version = match["name"], match["version"]
    if version is None:
        version = str(client.get_model_version_by_alias(name, match["alias"]).version)
    done: dict[str, Any] = {"registered_model": name, "version": str(version)}
    if alias is not None:
        client.set_registered_model_alias(name, alias, version)
        done["alias"] = alias
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if tags:
        done["tags"] = dict(tags)
    return done


def approve_model_package(client: Any, arn: str, description: str) -> dict[str, Any]:
    """Approve a model package awaiting approval (``PendingManualApproval``); one already Approved is left as it is,
    and one a person Rejected is never overridden by a gate."""
    status = client.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
    done: dict[str, Any] = {"model_package_arn": arn, "previous_status": status}
    if status == "PendingManualApproval":
        client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                    ApprovalDescription=description[:1000])
        done["status"] = "Approved"
    else:
        done["status"] = status
        done["note"] = "already Approved" if status == "Approved" else f"left {status}: not pending approval"
    return done
