"""Resolving an SDK model argument (a ModelSpec, a dict of its fields, or a string) into a ``ModelSpec``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from eval_pipeline.inference.embedded import EMBEDDED_MODELS
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
    "('us.anthropic.claude-3-5-haiku-20241022-v1:0') or ARN ('arn:aws:bedrock:...'), or "
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
    if _BEDROCK_ARN.match(text):
        return ModelSpec(name=name or partition_name(text.rsplit("/", 1)[-1]), backend="bedrock", model=text)
    if _BEDROCK_ID.match(text):
        return ModelSpec(name=name or partition_name(text), backend="bedrock", model=text)
    hint = " (no such directory)" if "/" in text or text.startswith(".") else ""
    raise ValueError(f"{role}: cannot resolve model {text!r}{hint}; accepted: {ACCEPTED_FORMS}")


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
