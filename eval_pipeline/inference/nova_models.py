"""Amazon Nova's JumpStart names (``nova-textgeneration-lite``) routed to Bedrock: the model's cross-region
inference profile for the session's region (``us.amazon.nova-lite-v1:0`` in us-east-1, ``eu.`` in Europe,
``apac.`` in Asia Pacific), as the notebook's Nova path does. Both tables are registries: a new Nova model or
geography is one ``register`` call."""

from __future__ import annotations

from dataclasses import dataclass

from eval_pipeline.registry import Registry


@dataclass(frozen=True)
class NovaModel:
    """A JumpStart Nova name and its Bedrock foundation-model id."""

    jumpstart_name: str
    bedrock_model_id: str


@dataclass(frozen=True)
class Geography:
    """Regions whose name starts with ``region_prefix`` use inference profiles named ``<profile_prefix>.<model>``."""

    region_prefix: str
    profile_prefix: str


NOVA_MODELS: Registry[NovaModel] = Registry("Nova JumpStart model")
for _name, _model_id in (
    ("nova-textgeneration-micro", "amazon.nova-micro-v1:0"),
    ("nova-textgeneration-lite", "amazon.nova-lite-v1:0"),
    ("nova-textgeneration-pro", "amazon.nova-pro-v1:0"),
    ("nova-textgeneration-premier", "amazon.nova-premier-v1:0"),
    ("nova-textgeneration-lite-v2", "amazon.nova-2-lite-v1:0"),
):
    NOVA_MODELS.register(_name, NovaModel(_name, _model_id))

GEOGRAPHIES: Registry[Geography] = Registry("inference-profile geography")
for _region_prefix, _profile_prefix in (("us-gov-", "us-gov"), ("us-", "us"), ("eu-", "eu"), ("ap-", "apac")):
    GEOGRAPHIES.register(_region_prefix, Geography(_region_prefix, _profile_prefix))


def is_nova_jumpstart_name(name: str) -> bool:
    return name in NOVA_MODELS


def profile_prefix(region: str) -> str:
    """The inference-profile prefix of ``region`` (the longest matching region prefix wins)."""
    matches = [GEOGRAPHIES.get(p) for p in GEOGRAPHIES.names() if region.startswith(p)]
    if not matches:
        known = ", ".join(f"{p}*" for p in GEOGRAPHIES.names())
        raise ValueError(f"no Bedrock cross-region inference profile is known for region {region!r} ({known})")
    return max(matches, key=lambda g: len(g.region_prefix)).profile_prefix


def nova_inference_profile(name: str, region: str) -> str:
    """The Bedrock inference-profile id serving the JumpStart Nova model ``name`` from ``region``.

    Example:
        >>> nova_inference_profile("nova-textgeneration-lite", "us-east-1")
        'us.amazon.nova-lite-v1:0'
    """
    return f"{profile_prefix(region)}.{NOVA_MODELS.get(name).bedrock_model_id}"
