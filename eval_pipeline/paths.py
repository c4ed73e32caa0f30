"""Where local state lives: everything under one folder, ``$EVAL_PIPELINE_HOME`` (default ``./.eval_pipeline``)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "EVAL_PIPELINE_HOME"
MODEL_CACHE_ENV = "EVAL_PIPELINE_MODEL_CACHE"
SUITES_DIR_ENV = "EVAL_PIPELINE_SUITES"


def home() -> Path:
    """The state folder; created on first use."""
    path = Path(os.environ.get(HOME_ENV) or ".eval_pipeline").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def dagster_home() -> Path:
    return _sub("dagster")


def outputs_dir() -> Path:
    return _sub("outputs")


def cache_dir() -> Path:
    return _sub("cache")


def generation_cache_path() -> Path:
    return cache_dir() / "generations.sqlite"


def judge_cache_path() -> Path:
    """Judge replies, apart from generations: changing the judge re-runs judging only."""
    return cache_dir() / "judgments.sqlite"


def mlflow_dir() -> Path:
    return _sub("mlflow")


def model_cache_dir() -> Path:
    """Converted models (e.g. the embedded GGUF as safetensors); ``$EVAL_PIPELINE_MODEL_CACHE`` overrides."""
    override = os.environ.get(MODEL_CACHE_ENV)
    path = Path(override).expanduser().resolve() if override else home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def suites_dir() -> Path:
    """Folder of suite YAML files; ``$EVAL_PIPELINE_SUITES`` overrides ``./evals``."""
    return Path(os.environ.get(SUITES_DIR_ENV) or "evals").expanduser().resolve()


def sdk_suites_dir() -> Path:
    """Suites written by the Python SDK's evaluators; the code location loads them beside ``suites_dir()``."""
    return _sub("sdk_suites")


def default_mlflow_uri() -> str:
    return f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


def _sub(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
