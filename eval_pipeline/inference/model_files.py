"""Model files by URI: a local folder (or an embedded name, or a Hugging Face id) as today, an ``s3://`` prefix or
``model.tar.gz``, or an MLflow ``models:/name/version``, ``models:/name@alias`` or ``runs:/run_id/path``, each turned
into a local folder that ``from_pretrained`` loads.

Sources are entries of ``MODEL_FILE_SOURCES`` keyed by URI scheme. Remote files land in a content-addressed cache
under ``paths.model_cache_dir() / "remote"``: an S3 copy is keyed by its objects' ETags (a re-upload is a new
folder; a second load of the same objects downloads nothing), an MLflow copy by its registry and pinned version. A
copy is written to a temporary folder and renamed into place under a lock, so two processes resolving one URI at
once end with one complete copy. A URI that cannot be read is an ``EvalInputError`` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.file_lock import exclusive_lock
from eval_pipeline.registry import Registry

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
"""An ``s3://`` URI ending so is one archive (a SageMaker ``ModelDataUrl``), extracted; any other is a prefix."""
_MODEL_MARKER = "config.json"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run>[^/]+)(?:/(?P<path>.*))?$")


@dataclass(frozen=True)
class FetchOptions:
    """What a remote source needs besides its URI: the cache folder and the MLflow tracking URI."""

    cache_dir: Path
    tracking_uri: str | None = None


@dataclass(frozen=True)
class ModelFileSource:
    """One URI scheme: ``fetch`` makes its files a local folder (or file); ``problem`` says why a URI of the scheme
    is malformed (checked when a suite loads, without reading anything), or None."""

    fetch: Callable[[str, FetchOptions], Path]
    problem: Callable[[str], str | None]


MODEL_FILE_SOURCES: Registry[ModelFileSource] = Registry("model-file source", "eval_pipeline.model_file_sources")
"""Model-file sources by URI scheme (``s3``, ``models``, ``runs``); a URI without a scheme is a local path."""


def uri_scheme(uri: str) -> str | None:
    """The scheme of ``scheme:/...`` (lower case), or None for a path, an embedded name or a Hugging Face id."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names files a source fetches (not a local path)."""
    return uri_scheme(uri) not in (None, "file")


def model_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot name model files (an unknown scheme, a malformed URI), or None; reads nothing."""
    scheme = uri_scheme(uri)
    if scheme in (None, "file"):
        return None
    if scheme not in MODEL_FILE_SOURCES:
        return f"model files at {uri}: {MODEL_FILE_SOURCES.unknown(scheme)}"
    return MODEL_FILE_SOURCES.get(scheme).problem(uri)


def resolve_model_files(uri: str, *, tracking_uri: str | None = None, cache_dir: Path | None = None) -> str:
    """A local folder (or Hugging Face id) that ``from_pretrained`` takes for ``uri``.

    A path, ``file://`` path or embedded name resolves as ``embedded.resolve_model_path`` does; a remote URI is
    fetched into the cache (``cache_dir``, default ``paths.model_cache_dir() / "remote"``) once. ``models:/`` and
    ``runs:/`` URIs are read from ``tracking_uri`` (default ``$MLFLOW_TRACKING_URI``, else the pipeline's store).
    """
    from eval_pipeline.inference.embedded import resolve_model_path

    scheme = uri_scheme(uri)
    if scheme is None:
        return resolve_model_path(uri)
    if scheme == "file":
        return resolve_model_path(uri.split(":", 1)[1].removeprefix("//"))
    problem = model_uri_problem(uri)
    if problem is not None:
        raise EvalInputError(problem, field="model")
    options = FetchOptions(cache_dir or paths.model_cache_dir() / "remote", tracking_uri)
    return str(model_root(MODEL_FILE_SOURCES.get(scheme).fetch(uri, options)))


def model_root(folder: Path) -> Path:
    """The folder holding ``config.json`` inside a fetched copy: the copy itself, MLflow's ``model/`` folder, or
    the one folder an archive wraps its files in; the copy itself when none is found (a single file, a GGUF)."""
    if not folder.is_dir() or (folder / _MODEL_MARKER).is_file():
        return folder
    if (folder / "model" / _MODEL_MARKER).is_file():
        return folder / "model"
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return model_root(entries[0])
    return folder


def registry_uri(suite: object | None) -> str | None:
    """The MLflow tracking URI a suite's ``models:/`` and ``runs:/`` URIs are read from: its ``watch.tracking_uri``
    when it watches a registry elsewhere, else None (``$MLFLOW_TRACKING_URI``, else the pipeline's store)."""
    return getattr(getattr(suite, "watch", None), "tracking_uri", None)


# -- the cache ---------------------------------------------------------------------------------------------------


def cached_copy(cache_dir: Path, key: str, fill: Callable[[Path], None]) -> Path:
    """``cache_dir / key``, filled once by ``fill(folder)``: into a temporary folder, renamed into place under a
    lock (a copy that exists is complete; one process downloads while the others wait, then take its copy)."""
    target = cache_dir / key
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(cache_dir / f".{key}.lock"):
        if target.is_dir():
            return target
        for stale in cache_dir.glob(f".{key}.tmp-*"):  # left by a process killed mid-download (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=cache_dir))
        try:
            tmp.chmod(0o755)
            fill(tmp)
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def content_key(kind: str, entries: list[tuple[str, ...]]) -> str:
    """A cache folder name from what identifies the content (sorted, so listing order does not matter)."""
    digest = hashlib.sha256(json.dumps([kind, sorted(entries)]).encode()).hexdigest()
    return f"{kind}-{digest[:32]}"


def safe_relative(name: str, uri: str) -> PurePosixPath:
    """A member or key name as a relative path that stays inside its folder, else an EvalInputError."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name.startswith("\\"):
        raise EvalInputError(f"model files at {uri}: refusing '{name}', which would be written outside the model "
                             "folder", field="model")
    return path


# -- S3 ----------------------------------------------------------------------------------------------------------


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _s3_problem(uri: str) -> str | None:
    if not uri.startswith("s3://"):
        return f"model files at {uri}: an S3 URI is s3://bucket/prefix/"
    bucket, _ = _split_s3(uri)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        return f"model files at {uri}: '{bucket}' is not an S3 bucket name"
    return None


def s3_client() -> Any:
    """A boto3 S3 client from the environment (credentials, region, ``AWS_ENDPOINT_URL_S3``)."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None)


def _s3_error(uri: str, exc: Exception) -> EvalInputError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        reason = f"{error.get('Code', 'error')}: {error.get('Message') or exc}"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return EvalInputError(f"model files at {uri} cannot be read ({reason})", field="model")


def fetch_s3(uri: str, options: FetchOptions) -> Path:
    """Every object under the prefix (or the one archive, extracted), cached by the objects' ETags."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3(uri)
    client = s3_client()
    try:
        if key.endswith(ARCHIVE_SUFFIXES):
            return _fetch_archive(client, uri, bucket, key, options)
        return _fetch_prefix(client, uri, bucket, f"{key.rstrip('/')}/" if key.strip("/") else "", options)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(uri, exc) from exc


def _fetch_prefix(client: Any, uri: str, bucket: str, prefix: str, options: FetchOptions) -> Path:
    objects: list[tuple[str, str, str]] = []  # (relative name, key, etag)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):  # a "folder" marker
                continue
            relative = safe_relative(item["Key"][len(prefix):], uri)
            objects.append((str(relative), item["Key"], item["ETag"].strip('"')))
    if not objects:
        raise EvalInputError(f"model files at {uri}: no objects under s3://{bucket}/{prefix}", field="model")

    def fill(folder: Path) -> None:
        for relative, key, etag in objects:
            destination = folder / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            download_object(client, bucket, key, etag, destination)

    return cached_copy(options.cache_dir, content_key("s3", [(rel, etag) for rel, _key, etag in objects]), fill)


def download_object(client: Any, bucket: str, key: str, etag: str, destination: Path) -> None:
    """One object into ``destination``, only as the ETag it was listed with (a changed object fails the copy, so a
    cache folder holds exactly the objects its name stands for)."""
    body = client.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
    with destination.open("wb") as handle:
        shutil.copyfileobj(body, handle, 1 << 20)


def _fetch_archive(client: Any, uri: str, bucket: str, key: str, options: FetchOptions) -> Path:
    etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')

    def fill(folder: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".download-", dir=options.cache_dir) as download:
            archive = Path(download) / "model.tar.gz"
            download_object(client, bucket, key, etag, archive)
            extract_archive(archive, folder, uri)

    return cached_copy(options.cache_dir, content_key("s3-archive", [("archive", etag)]), fill)


def extract_archive(archive: Path, folder: Path, uri: str) -> None:
    """Extract a ``.tar.gz`` into ``folder``, refusing members that would land outside it (``../``, absolute
    paths, links pointing out, devices): nothing is extracted from an archive holding one."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                safe_relative(member.name, uri)
                if member.issym() or member.islnk():
                    target = PurePosixPath(member.name).parent / member.linkname if member.issym() \
                        else PurePosixPath(member.linkname)
                    safe_relative(os.path.normpath(str(target)), uri)
                elif not (member.isfile() or member.isdir()):
                    raise EvalInputError(f"model files at {uri}: refusing '{member.name}', which is not a file or "
                                         "folder", field="model")
            tar.extractall(folder, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise EvalInputError(f"model files at {uri}: not a readable .tar.gz ({type(exc).__name__}: {exc})",
                             field="model") from exc


# -- MLflow ------------------------------------------------------------------------------------------------------


def _mlflow_problem(uri: str) -> str | None:
    if uri.startswith("models:"):
        match = _MODELS_URI.match(uri)
        version = match.group("version") if match else None
        if match is None or (version is not None and not (version.isdigit() or version == "latest")):
            return (f"model files at {uri}: an MLflow model URI is models:/<name>/<version>, models:/<name>/latest "
                    "or models:/<name>@<alias>")
        return None
    match = _RUNS_URI.match(uri)
    if match is None or not (match.group("path") or "").strip("/"):
        return f"model files at {uri}: an MLflow run URI is runs:/<run_id>/<artifact path>"
    return None


def _tracking_uri(options: FetchOptions) -> str:
    if options.tracking_uri:
        return options.tracking_uri
    from eval_pipeline.tracking.mlflow_log import default_tracking_uri

    return default_tracking_uri()


def pinned_uri(uri: str, client: Any) -> str:
    """``uri`` with its alias or ``latest`` replaced by the version it points at now (a run URI as it is)."""
    match = _MODELS_URI.match(uri)
    if match is None:
        return uri
    name, version, alias = match.group("name"), match.group("version"), match.group("alias")
    if alias is not None:
        version = client.get_model_version_by_alias(name, alias).version
    elif version == "latest":
        escaped = name.replace("'", "\\'")
        versions = [int(v.version) for v in client.search_model_versions(f"name='{escaped}'")]
        if not versions:
            raise EvalInputError(f"model files at {uri}: registered model '{name}' has no versions", field="model")
        version = str(max(versions))
    else:
        client.get_model_version(name, version)  # exists, or an MlflowException naming it
    return f"models:/{name}/{version}"


def fetch_mlflow(uri: str, options: FetchOptions) -> Path:
    """The artifacts of a registered model version (an alias pinned to its version now) or of a run path, cached by
    registry and pinned URI (a model version's files do not change)."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking_uri = _tracking_uri(options)
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        pinned = pinned_uri(uri, client)

        def fill(folder: Path) -> None:
            # A models:/ URI through the client's registry (download_artifacts reads models:/ from the
            # process-wide registry, whatever tracking URI it is given).
            match = _MODELS_URI.match(pinned)
            source = (client.get_model_version_download_uri(match.group("name"), match.group("version"))
                      if match else pinned)
            download_artifacts(artifact_uri=source, dst_path=str(folder), tracking_uri=tracking_uri)
            merge_mlflow_tokenizer(folder)

        return cached_copy(options.cache_dir, content_key("mlflow", [(tracking_uri, pinned)]), fill)
    except (MlflowException, OSError) as exc:
        raise EvalInputError(f"model files at {uri} cannot be read from {tracking_uri} "
                             f"({type(exc).__name__}: {exc})", field="model") from exc


def merge_mlflow_tokenizer(folder: Path) -> None:
    """An ``mlflow.transformers`` model (a folder with an ``MLmodel`` file) keeps its tokenizer in
    ``components/tokenizer/`` beside ``model/``: copy those files into ``model/`` so that one folder loads both
    (files already there are kept)."""
    for mlmodel in folder.rglob("MLmodel"):
        tokenizer, model = mlmodel.parent / "components" / "tokenizer", mlmodel.parent / "model"
        if not (tokenizer.is_dir() and (model / _MODEL_MARKER).is_file()):
            continue
        for file in tokenizer.iterdir():
            if file.is_file() and not (model / file.name).exists():
                shutil.copy2(file, model / file.name)


MODEL_FILE_SOURCES.register("s3", ModelFileSource(fetch=fetch_s3, problem=_s3_problem))
MODEL_FILE_SOURCES.register("models", ModelFileSource(fetch=fetch_mlflow, problem=_mlflow_problem))
MODEL_FILE_SOURCES.register("runs", ModelFileSource(fetch=fetch_mlflow, problem=_mlflow_problem))
