"""The version of a dataset's files, cheaply: a local file, folder or glob by its files' contents (re-read only when
a file's size or modification time moved), an ``s3://`` key, prefix or glob by its objects' ETags (no download)."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval_pipeline.errors import EvalInputError

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class DatasetVersion:
    """A dataset's version (``version``) and the file stamps it was computed from (``stamps``: name → size and
    mtime, or the ETag), so the next look re-reads only when a stamp moved."""

    version: str
    stamps: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "stamps": self.stamps}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> DatasetVersion | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(data["version"], dict(data.get("stamps", {})))


def dataset_version(uri: str, previous: DatasetVersion | None = None, *, s3_client: Any = None) -> DatasetVersion:
    """The current version of the files ``uri`` names (the same files the samples stage reads); ``previous`` is
    returned as it is when no file's stamp moved. An input error when no file matches."""
    if uri.startswith("s3://"):
        stamps = _s3_stamps(uri, s3_client)
        return DatasetVersion(_digest(stamps), stamps)
    files = _local_files(uri)
    if not files:
        raise EvalInputError("dataset not found: no file matches", file=uri)
    stamps = {name: f"{path.stat().st_size}:{path.stat().st_mtime_ns}" for name, path in files.items()}
    if previous is not None and previous.stamps == stamps:
        return previous
    contents = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    return DatasetVersion(_digest(contents), stamps)


def _local_files(uri: str) -> dict[str, Path]:
    """Name (relative to the dataset's folder, so the version is the same wherever the folder is) → path."""
    if _GLOB_CHARS & set(uri):
        prefix = uri[:min(uri.index(c) for c in _GLOB_CHARS if c in uri)]
        base = Path(prefix[:prefix.rfind("/") + 1] or ".")  # the folder the pattern starts in
        paths = [Path(match) for match in glob.glob(uri, recursive=True)]
    else:
        path = Path(uri)
        if path.is_dir():
            base, paths = path, [p for p in path.iterdir() if p.suffix in (".jsonl", ".json")]
        else:
            base, paths = path.parent, [path] if path.is_file() else []
    return {p.relative_to(base).as_posix() if p.is_relative_to(base) else p.name: p
            for p in sorted(paths) if p.is_file()}


def _s3_stamps(uri: str, client: Any) -> dict[str, str]:
    if client is None:
        import boto3
        client = boto3.client("s3")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    pattern = key if _GLOB_CHARS & set(key) else None
    prefix = key.split("*")[0].split("?")[0].split("[")[0] if pattern else key
    objects: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects |= {obj["Key"]: obj["ETag"].strip('"') for obj in page.get("Contents", [])}
    if pattern:
        chosen = {k: v for k, v in objects.items() if fnmatch.fnmatchcase(k, pattern)}
    elif key in objects:
        chosen = {key: objects[key]}
    else:
        chosen = {k: v for k, v in objects.items() if not k.endswith("/")}
    if not chosen:
        raise EvalInputError("dataset not found: no object matches", file=uri)
    return dict(sorted(chosen.items()))


def _digest(value: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
