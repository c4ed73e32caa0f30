"""Ingestion from s3:// against a moto S3 server on 127.0.0.1, through the real boto3 client."""

import json

import boto3
import pytest

from eval_pipeline.data.formats import load_samples
from eval_pipeline.errors import EvalInputError


@pytest.fixture
def bucket(aws_env: str) -> str:
    client = boto3.client("s3")
    client.create_bucket(Bucket="evals")
    for key, prompts in {"qa/part-1.jsonl": ["a", "b"], "qa/part-2.jsonl": ["c"], "other/x.jsonl": ["z"]}.items():
        body = "".join(json.dumps({"prompt": p, "answer": p.upper()}) + "\n" for p in prompts)
        client.put_object(Bucket="evals", Key=key, Body=body.encode())
    return "evals"


def test_single_key(bucket: str) -> None:
    frame = load_samples(f"s3://{bucket}/qa/part-1.jsonl")
    assert frame["input"].tolist() == ["a", "b"] and frame["reference"].tolist() == ["A", "B"]
    assert frame["source"].iloc[0] == "s3://evals/qa/part-1.jsonl"


def test_prefix_and_glob(bucket: str) -> None:
    assert load_samples(f"s3://{bucket}/qa/")["input"].tolist() == ["a", "b", "c"]
    assert load_samples(f"s3://{bucket}/qa/*-2.jsonl")["input"].tolist() == ["c"]


def test_missing_key_and_bucket(bucket: str) -> None:
    with pytest.raises(EvalInputError, match="no file matches"):
        load_samples(f"s3://{bucket}/nothing-here/")
    with pytest.raises(EvalInputError, match="cannot read from S3"):
        load_samples("s3://no-such-bucket/x.jsonl")
