"""Ingestion from s3:// against a moto S3 server on 127.0.0.1, through the real boto3 client."""

import json
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from eval_pipeline.data.formats import load_samples
from eval_pipeline.errors import EvalInputError


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
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
