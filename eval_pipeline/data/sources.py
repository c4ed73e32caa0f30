"""Where dataset files come from: a local path, a glob, or ``s3://bucket/key`` (a key, a prefix, or a glob)."""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from eval_pipeline.errors import EvalInputError

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset: its display name and its bytes."""

    name: str
    data: bytes


def read_source(uri: str) -> list[SourceFile]:
    """Every file the URI names, sorted by name; an error when it names none."""
    files = list(_s3_files(uri) if uri.startswith("s3://") else _local_files(uri))
    if not files:
        raise EvalInputError("dataset not found: no file matches", file=uri)
    return files


def _local_files(uri: str) -> Iterator[SourceFile]:
    if _GLOB_CHARS & set(uri):
        matches = sorted(glob.glob(uri, recursive=True))
    else:
        path = Path(uri)
        if path.is_dir():
            matches = sorted(str(p) for p in path.iterdir() if p.suffix in (".jsonl", ".json"))
        elif path.is_file():
            matches = [uri]
        else:
            raise EvalInputError("dataset file not found", file=uri)
    for match in matches:
        if Path(match).is_file():
            yield SourceFile(match, Path(match).read_bytes())


def _s3_files(uri: str) -> Iterator[SourceFile]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    pattern = key if _GLOB_CHARS & set(key) else None
    prefix = key.split("*")[0].split("?")[0].split("[")[0] if pattern else key
    try:
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        if pattern:
            keys = [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
        elif key in keys:
            keys = [key]
        else:
            keys = [k for k in keys if not k.endswith("/")]
        for name in sorted(keys):
            body = client.get_object(Bucket=bucket, Key=name)["Body"].read()
            yield SourceFile(f"s3://{bucket}/{name}", body)
    except (ClientError, BotoCoreError) as exc:
        raise EvalInputError(f"cannot read from S3: {exc}", file=uri) from exc
