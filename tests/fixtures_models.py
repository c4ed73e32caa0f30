"""Session-scoped model fixtures: tiny random models built on the fly and the embedded SmolLM2 (converted once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_model

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ~30k-parameter Llama with a byte-level BPE tokenizer and a chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_model_no_template_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model without a chat template (prompts are plain text)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model-plain"), chat_template=False)


@pytest.fixture(scope="session")
def tiny_eos_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model biased towards EOS: some answers stop early, others run to max_tokens."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model-eos"), eos_bias=0.5)


@pytest.fixture(scope="session")
def tiny_no_bos_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny Llama whose tokenizer has ``bos_token`` None and an EOS token (Qwen-style)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model-no-bos"), bos=False)


def shared_model_cache() -> Path:
    """Where converted models are kept across test sessions (so CI converts SmolLM2 only once)."""
    return Path(os.environ.get("EVAL_PIPELINE_MODEL_CACHE") or REPO_ROOT / ".eval_pipeline" / "models")


@pytest.fixture(scope="session")
def embedded_model_dir() -> str:
    """The embedded SmolLM2-135M-Instruct as a safetensors folder in the shared model cache."""
    from eval_pipeline.inference.embedded import resolve_model_path

    with pytest.MonkeyPatch.context() as env:
        env.setenv("EVAL_PIPELINE_MODEL_CACHE", str(shared_model_cache()))
        return resolve_model_path("smollm2-135m-instruct")
