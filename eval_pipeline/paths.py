"""Where local state lives: everything under one folder, ``$EVAL_PIPELINE_HOME`` (default ``./.eval_pipeline``)."""

from __future__ import annotations

import os
from pathlib import Path

from eval_pipeline.errors import EvalInputError

HOME_ENV = "EVAL_PIPELINE_HOME"
MODEL_CACHE_ENV = "EVAL_PIPELINE_MODEL_CACHE"
SUITES_DIR_ENV = "EVAL_PIPELINE_SUITES"
OUTPUTS_ENV = "EVAL_PIPELINE_OUTPUTS"
"""Where the stage tables go: a folder or an ``s3://bucket/prefix`` every worker shares (default: the state folder)."""
CACHE_URL_ENV = "EVAL_PIPELINE_CACHE_URL"
"""Where the request and judge caches live: ``postgresql://…`` (one database, a namespace each) that every worker
shares, or a folder / ``sqlite:///folder`` for the two SQLite files (default: the state folder's ``cache/``)."""


def home() -> Path:
    """The state folder; created on first use (an unusable one is an input error naming it and the remedy)."""
    return writable_folder(state_path(), HOME_ENV)


def state_path(*parts: str) -> Path:
    """A path under the state folder, without creating anything."""
    return Path(os.environ.get(HOME_ENV) or ".eval_pipeline").expanduser().resolve().joinpath(*parts)


def writable_folder(path: Path, env_var: str = HOME_ENV) -> Path:
    """``path``, created when missing; EvalInputError naming it when it cannot be created or written to
    (the remedy: make it writable, or point ``env_var`` at a folder that is)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(path, f"cannot be created ({exc.strerror or exc})", env_var) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise _unusable(path, "is not writable", env_var)
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


def outputs_location() -> str:
    """The Parquet outputs' base: ``$EVAL_PIPELINE_OUTPUTS`` (a folder or ``s3://…``), else ``outputs_dir()``."""
    location = os.environ.get(OUTPUTS_ENV, "").strip().rstrip("/")
    if not location:
        return str(outputs_dir())
    return location if "://" in location else str(writable_folder(Path(location).expanduser().resolve(), OUTPUTS_ENV))


def generation_cache_location() -> str:
    """The generation cache: in ``$EVAL_PIPELINE_CACHE_URL`` when set (namespace ``generations``), else the
    state folder's SQLite file."""
    return _cache_location("generations") or str(generation_cache_path())


def judge_cache_location() -> str:
    """The judge cache: in ``$EVAL_PIPELINE_CACHE_URL`` when set (namespace ``judgments``), else the state
    folder's SQLite file."""
    return _cache_location("judgments") or str(judge_cache_path())


def _cache_location(namespace: str) -> str | None:
    """``namespace``'s cache in ``$EVAL_PIPELINE_CACHE_URL``: a database URL with ``namespace=`` added, or the
    ``<namespace>.sqlite`` file in the folder a path or ``sqlite:///`` URL names; None when it is unset."""
    url = os.environ.get(CACHE_URL_ENV, "").strip()
    if not url:
        return None
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() == "sqlite":
        folder = rest[1:] if separator else url  # sqlite:///relative, sqlite:////absolute
        return str(writable_folder(Path(folder).expanduser().resolve(), CACHE_URL_ENV) / f"{namespace}.sqlite")
    return f"{url}{'&' if '?' in url else '?'}namespace={namespace}"


def mlflow_dir() -> Path:
    return _sub("mlflow")


def model_cache_dir() -> Path:
    """Converted models (e.g. the embedded GGUF as safetensors); ``$EVAL_PIPELINE_MODEL_CACHE`` overrides."""
    override = os.environ.get(MODEL_CACHE_ENV)
    if override:
        return writable_folder(Path(override).expanduser().resolve(), MODEL_CACHE_ENV)
    return _sub("models")


def suites_dir() -> Path:
    """Folder of suite YAML files; ``$EVAL_PIPELINE_SUITES`` overrides ``./evals``."""
    return Path(os.environ.get(SUITES_DIR_ENV) or "evals").expanduser().resolve()


def sdk_suites_dir() -> Path:
    """Suites written by the Python SDK's evaluators; the code location loads them beside ``suites_dir()``."""
    return _sub("sdk_suites")


def default_mlflow_uri() -> str:
    return f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


def _sub(name: str) -> Path:
    return writable_folder(home() / name)


def _unusable(path: Path, problem: str, env_var: str) -> EvalInputError:
    return EvalInputError(f"the state folder {problem}: set {env_var} to a folder you can write to, or make this "
                          "one writable", file=str(path))


def project_suites_dir() -> Path:
    """``suites_dir()`` when it exists; else an input error saying this is not a project folder."""
    folder = suites_dir()
    if folder.is_dir():
        return folder
    if os.environ.get(SUITES_DIR_ENV):
        raise EvalInputError(f"{SUITES_DIR_ENV} names a folder that does not exist: point it at your suites "
                             "folder", file=str(folder))
    raise EvalInputError(f"not a project folder: there is no evals/ folder here and {SUITES_DIR_ENV} is not set; "
                         f"run eval-pipeline in a folder holding evals/*.yaml, or set {SUITES_DIR_ENV}",
                         file=str(folder.parent))
