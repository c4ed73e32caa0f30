"""Resolving an SDK model argument (a ModelSpec, a dict of its fields, or a string) into a ``ModelSpec``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from eval_pipeline.data.sagemaker_arns import model_package_arn, parse_arn
from eval_pipeline.inference.embedded import EMBEDDED_MODELS
from eval_pipeline.inference.model_package import hosted_arn_kind, hub_model_arn
from eval_pipeline.inference.nova_models import is_nova_jumpstart_name, nova_inference_profile
from eval_pipeline.suites.spec import ModelSpec

MAX_NAME_CHARS = 63
SAGEMAKER_PREFIX = "sagemaker:"
BEDROCK_PROVIDERS = ("ai21", "amazon", "anthropic", "cohere", "deepseek", "luma", "meta", "mistral", "openai",
                     "qwen", "stability", "twelvelabs", "writer")
"""Bedrock model-id providers (``<provider>.<model>``), optionally behind a cross-region profile prefix."""
_BEDROCK_ID = re.compile(rf"^(?:[a-z]{{2,6}}(?:-[a-z]+)?\.)?(?:{'|'.join(BEDROCK_PROVIDERS)})\.[A-Za-z0-9][\w.:-]*$")
_BEDROCK_ARN = re.compile(r"^arn:aws[\w-]*:bedrock:[\w-]*:\d*:[\w-]+/\S+$")
ACCEPTED_FORMS = (
    "a ModelSpec; a dict of ModelSpec fields (e.g. {'backend': 'openai', 'base_url': ..., 'model': ...}); "
    "or a string: the embedded model " + ", ".join(repr(n) for n in EMBEDDED_MODELS) + ", an existing local model "
    "directory, a Bedrock model id ('amazon.nova-pro-v1:0'), inference-profile id "
    "('us.anthropic.claude-3-5-haiku-20241022-v1:0') or ARN ('arn:aws:bedrock:...'), a Nova JumpStart name "
    "('nova-textgeneration-lite', served by Bedrock), a SageMaker model package ARN "
    "('arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>', served on a temporary endpoint), or "
    "'sagemaker:<endpoint-name>'. A Hugging Face id needs a dict: {'backend': 'local', 'model': '<org>/<name>'}")


def resolve_model(value: Any, *, role: str = "model", name: str | None = None) -> ModelSpec:
    """The ``ModelSpec`` for one model argument, as the evaluators read ``model``, ``base_model`` and
    ``evaluator_model``.

    Args:
        value: A ``ModelSpec``; a dict of its fields (``backend`` defaults to ``local``); or a string: the embedded
            model's name, a local model folder, a Bedrock model id, inference-profile id or ARN, or
            ``"sagemaker:<endpoint-name>"``.
        role: The argument's name, for error messages (``"model"``, ``"base_model"``, ``"evaluator_model"``).
        name: The model's name, its Dagster partition key. Default: derived from the model
            (``"amazon.nova-lite-v1:0"`` → ``amazon.nova-lite-v1-0``).

    Returns:
        The ``ModelSpec``.

    Raises:
        ValueError: A string that names no model (the message lists the accepted forms).

    Example:
        >>> resolve_model("amazon.nova-lite-v1:0").backend
        'bedrock'
    """
    if isinstance(value, ModelSpec):
        return value if name is None else value.model_copy(update={"name": name})
    if isinstance(value, dict):
        fields = dict(value)
        fields.setdefault("backend", "local")
        fields["name"] = name or fields.get("name") or partition_name(
            str(fields.get("model") or fields.get("endpoint") or fields.get("base_url") or role))
        return ModelSpec.model_validate(fields)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{role}: cannot use {value!r} as a model; accepted: {ACCEPTED_FORMS}")
    return _from_string(value.strip(), role, name)


def _from_string(text: str, role: str, name: str | None) -> ModelSpec:
    if text.startswith(SAGEMAKER_PREFIX):
        endpoint = text[len(SAGEMAKER_PREFIX):].strip()
        if not re.match(r"^[A-Za-z0-9](-*[A-Za-z0-9])*$", endpoint):
            raise ValueError(f"{role}: {text!r} does not name a SageMaker endpoint; write 'sagemaker:<endpoint-name>'")
        return ModelSpec(name=name or partition_name(endpoint), backend="sagemaker", endpoint=endpoint)
    if text in EMBEDDED_MODELS:
        return ModelSpec(name=name or partition_name(text), backend="local", model=text)
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSpec(name=name or partition_name(path.resolve().name), backend="local",
                         model=str(path.resolve()))
    if hosted_arn_kind(text) is not None:
        return hosted_model(text, name=name)
    if is_nova_jumpstart_name(text):
        profile = nova_inference_profile(text, session_region(role))
        return ModelSpec(name=name or partition_name(text), backend="bedrock", model=profile)
    if _BEDROCK_ARN.match(text):
        return ModelSpec(name=name or partition_name(text.rsplit("/", 1)[-1]), backend="bedrock", model=text)
    if _BEDROCK_ID.match(text):
        return ModelSpec(name=name or partition_name(text), backend="bedrock", model=text)
    hint = " (no such directory)" if "/" in text or text.startswith(".") else ""
    raise ValueError(f"{role}: cannot resolve model {text!r}{hint}; accepted: {ACCEPTED_FORMS}")


def hosted_model(arn: str, *, name: str | None = None, model_artifact: str | None = None) -> ModelSpec:
    """A model package (or JumpStart hub model) ARN served on a temporary endpoint in the ARN's region
    (``sagemaker_package``); its name is the package's (``<group>-<version>``)."""
    parsed = parse_arn(arn)
    assert parsed is not None
    return ModelSpec(name=name or partition_name("-".join(parsed.path[-2:])), backend="sagemaker_package",
                     model=arn, region=parsed.region, model_artifact=model_artifact)


def session_region(role: str = "model") -> str:
    """The region of the AWS session (``AWS_REGION``/``AWS_DEFAULT_REGION``, the profile's), as the notebook's
    Nova routing uses it."""
    import boto3

    region = boto3.session.Session().region_name
    if not region:
        raise ValueError(f"{role}: a Nova JumpStart model is served through the Bedrock inference profile of the "
                         "session's region; set AWS_REGION (or AWS_DEFAULT_REGION)")
    return region


def base_model_of(spec: ModelSpec) -> ModelSpec | None:
    """The model a model package was fine-tuned from (its container's ``BaseModel``): a Nova model through its
    Bedrock inference profile, another JumpStart model on a temporary endpoint; None for a model that is not a
    package, or a package that names no base model."""
    if spec.backend != "sagemaker_package" or not spec.model or model_package_arn(spec.model) is None:
        return None
    from eval_pipeline.inference.aws import aws_client
    from eval_pipeline.inference.model_package import resolve_hosting

    hosting = resolve_hosting(aws_client("sagemaker", region=spec.region, timeout_s=spec.timeout_s, n_concurrent=1),
                              spec.model)
    if hosting.base_model is None:
        return None
    base = hosting.base_model.hub_content_name
    if is_nova_jumpstart_name(base):
        return ModelSpec(name=partition_name(base), backend="bedrock",
                         model=nova_inference_profile(base, spec.region or session_region("base_model")))
    return hosted_model(hub_model_arn(spec.region or session_region("base_model"), base,
                                      hosting.base_model.hub_content_version), name=partition_name(base))


def partition_name(text: str) -> str:
    """A Dagster partition key for a model: ``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most 63 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.") or "model"
    if len(cleaned) > MAX_NAME_CHARS:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[:MAX_NAME_CHARS - 9].rstrip('-_.')}-{digest}"
    return cleaned


def distinct_names(model: ModelSpec, base: ModelSpec | None) -> tuple[ModelSpec, ModelSpec | None]:
    """The model and base with different partition names (``-model`` / ``-base`` suffixes when they collide)."""
    if base is None or base.name != model.name:
        return model, base
    stem = model.name[:MAX_NAME_CHARS - len("-model")]
    return (model.model_copy(update={"name": f"{stem}-model"}), base.model_copy(update={"name": f"{stem}-base"}))


def describe(spec: ModelSpec) -> str:
    """A short label: ``bedrock:amazon.nova-pro-v1:0``, ``local:/path``, ``sagemaker:endpoint``."""
    return f"{spec.backend}:{spec.model or spec.endpoint or spec.base_url or spec.name}"
