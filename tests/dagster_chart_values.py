"""The part of the Dagster Helm chart's values (chart 1.13) that deploy/helm/values.yaml relies on, as a JSON schema.

Written from the chart's documented keys (``helm/dagster/schema/schema/charts/...`` in dagster-io/dagster: the
pydantic models its ``values.schema.json`` is generated from), not downloaded. Stricter than the chart where the
chart would silently ignore a key: every object lists its known keys and refuses others, so a misspelt key in our
values fails here instead of being dropped by ``helm install``. Kubernetes-shaped leaves (env, resources, volumes,
security contexts) are only typed here; tests/test_deploy.py checks them with the ``kubernetes`` client's models.
"""

from __future__ import annotations

from typing import Any


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


ANY_OBJECT: dict[str, Any] = {"type": "object"}
ANY_LIST: dict[str, Any] = {"type": "array"}
STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
ENV: dict[str, Any] = {"anyOf": [STRING_MAP, {"type": "array", "items": ANY_OBJECT}]}
PULL_POLICY: dict[str, Any] = {"enum": ["Always", "IfNotPresent", "Never"]}
IMAGE = _object({"repository": {"type": "string", "minLength": 1}, "tag": {"type": ["string", "null"]},
                 "pullPolicy": PULL_POLICY}, ("repository", "pullPolicy"))
TAG_LIMIT = _object({"key": {"type": "string"}, "limit": {"type": "integer", "minimum": 0},
                     "value": {"anyOf": [{"type": "string"},
                                         _object({"applyLimitPerUniqueValue": {"type": "boolean"}})]}},
                    ("key", "limit"))

USER_DEPLOYMENT = _object({
    "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
    "image": IMAGE, "port": {"type": "integer"},
    "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
    "codeServerArgs": {"type": "array", "items": {"type": "string"}},
    "includeConfigInLaunchedRuns": _object({"enabled": {"type": "boolean"}}, ("enabled",)),
    "env": ENV, "envConfigMaps": ANY_LIST, "envSecrets": ANY_LIST, "annotations": STRING_MAP,
    "nodeSelector": STRING_MAP, "affinity": ANY_OBJECT, "tolerations": ANY_LIST, "podSecurityContext": ANY_OBJECT,
    "securityContext": ANY_OBJECT, "resources": ANY_OBJECT, "livenessProbe": ANY_OBJECT,
    "readinessProbe": ANY_OBJECT, "startupProbe": ANY_OBJECT, "labels": STRING_MAP, "volumeMounts": ANY_LIST,
    "volumes": ANY_LIST, "schedulerName": {"type": "string"}, "replicaCount": {"type": "integer"},
    "service": ANY_OBJECT,
}, ("name", "image", "port"))

RUN_K8S_CONFIG = _object({name: ANY_OBJECT for name in (
    "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata")})

K8S_RUN_LAUNCHER = _object({
    "image": IMAGE, "imagePullPolicy": PULL_POLICY, "jobNamespace": {"type": ["string", "null"]},
    "loadInclusterConfig": {"type": "boolean"}, "kubeconfigFile": {"type": ["string", "null"]},
    "envConfigMaps": ANY_LIST, "envSecrets": ANY_LIST, "envVars": {"type": "array", "items": {"type": "string"}},
    "volumeMounts": ANY_LIST, "volumes": ANY_LIST, "labels": STRING_MAP, "failPodOnRunFailure": {"type": "boolean"},
    "resources": ANY_OBJECT, "schedulerName": {"type": "string"}, "securityContext": ANY_OBJECT,
    "runK8sConfig": RUN_K8S_CONFIG,
})

QUEUED_RUN_COORDINATOR = _object({
    "maxConcurrentRuns": {"type": "integer"}, "tagConcurrencyLimits": {"type": "array", "items": TAG_LIMIT},
    "dequeueIntervalSeconds": {"type": "integer"}, "dequeueNumWorkers": {"type": "integer"},
    "dequeueUseThreads": {"type": "boolean"}})

DAEMON = _object({
    "enabled": {"type": "boolean"},
    "runCoordinator": _object({
        "enabled": {"type": "boolean"}, "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
        "config": _object({"queuedRunCoordinator": QUEUED_RUN_COORDINATOR, "customRunCoordinator": ANY_OBJECT}),
    }, ("enabled", "type", "config")),
    "runMonitoring": _object({
        "enabled": {"type": "boolean"}, "startTimeoutSeconds": {"type": "integer"},
        "cancelTimeoutSeconds": {"type": "integer"}, "maxResumeRunAttempts": {"type": "integer"},
        "pollIntervalSeconds": {"type": "integer"}, "freeSlotsAfterRunEndSeconds": {"type": "integer"}}),
    "runRetries": _object({"enabled": {"type": "boolean"}, "maxRetries": {"type": "integer"},
                           "retryOnAssetOrOpFailure": {"type": "boolean"}}),
    "env": ENV, "envConfigMaps": ANY_LIST, "envSecrets": ANY_LIST, "resources": ANY_OBJECT,
    "podSecurityContext": ANY_OBJECT, "securityContext": ANY_OBJECT, "labels": STRING_MAP,
    "nodeSelector": STRING_MAP, "tolerations": ANY_LIST, "affinity": ANY_OBJECT, "annotations": STRING_MAP,
    "volumes": ANY_LIST, "volumeMounts": ANY_LIST, "image": IMAGE, "heartbeatTolerance": {"type": "integer"},
})

WEBSERVER = _object({
    "replicaCount": {"type": "integer"}, "image": IMAGE, "env": ENV, "envConfigMaps": ANY_LIST,
    "envSecrets": ANY_LIST, "resources": ANY_OBJECT, "podSecurityContext": ANY_OBJECT,
    "securityContext": ANY_OBJECT, "labels": STRING_MAP, "service": ANY_OBJECT, "enableReadOnly": {"type": "boolean"},
    "pathPrefix": {"type": "string"}, "logLevel": {"type": "string"},
})

POSTGRESQL = _object({
    "enabled": {"type": "boolean"}, "image": ANY_OBJECT, "postgresqlHost": {"type": "string"},
    "postgresqlUsername": {"type": "string"}, "postgresqlPassword": {"type": "string"},
    "postgresqlDatabase": {"type": "string"}, "postgresqlParams": STRING_MAP,
    "postgresqlScheme": {"type": "string"}, "service": _object({"port": {"type": "integer"}}, ("port",)),
})

S3_COMPUTE_LOGS = _object({
    "bucket": {"type": "string"}, "localDir": {"type": "string"}, "prefix": {"type": "string"},
    "useSsl": {"type": "boolean"}, "verify": {"type": "boolean"}, "verifyCertPath": {"type": "string"},
    "endpointUrl": {"type": "string"}, "skipEmptyFiles": {"type": "boolean"}, "uploadInterval": {"type": "integer"},
    "uploadExtraArgs": ANY_OBJECT, "showUrlOnly": {"type": "boolean"}, "region": {"type": "string"},
}, ("bucket",))

VALUES_SCHEMA: dict[str, Any] = _object({
    "global": _object({"postgresqlSecretName": {"type": "string"}, "dagsterHome": {"type": "string"},
                       "serviceAccountName": {"type": "string"}, "celeryConfigSecretName": {"type": "string"}}),
    "dagster-user-deployments": _object({
        "enabled": {"type": "boolean"}, "enableSubchart": {"type": "boolean"}, "imagePullSecrets": ANY_LIST,
        "deployments": {"type": "array", "items": USER_DEPLOYMENT, "minItems": 1}}, ("enabled", "deployments")),
    "runLauncher": _object({
        "type": {"enum": ["K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"]},
        "config": _object({"k8sRunLauncher": K8S_RUN_LAUNCHER, "celeryK8sRunLauncher": ANY_OBJECT,
                           "customRunLauncher": ANY_OBJECT}),
    }, ("type", "config")),
    "postgresql": POSTGRESQL,
    "generatePostgresqlPasswordSecret": {"type": "boolean"},
    "dagsterDaemon": DAEMON,
    "dagsterWebserver": WEBSERVER,
    "computeLogManager": _object({
        "type": {"enum": ["NoOpComputeLogManager", "AzureBlobComputeLogManager", "GCSComputeLogManager",
                          "S3ComputeLogManager", "CustomComputeLogManager"]},
        "config": _object({"s3ComputeLogManager": S3_COMPUTE_LOGS, "gcsComputeLogManager": ANY_OBJECT,
                           "azureBlobComputeLogManager": ANY_OBJECT, "customComputeLogManager": ANY_OBJECT}),
    }, ("type", "config")),
    "telemetry": _object({"enabled": {"type": "boolean"}}),
    # keys of the chart this file does not set (listed so that they are known, not refused)
    **{name: ANY_OBJECT for name in ("ingress", "rabbitmq", "redis", "flower", "scheduler", "pythonLogs", "busybox",
                                     "migrate", "serviceAccount", "retention", "additionalInstanceConfig",
                                     "pipelineRun")},
    "generateCeleryConfigSecret": {"type": "boolean"},
    "imagePullSecrets": ANY_LIST,
})
"""The chart's values, as far as this deploy uses them."""
