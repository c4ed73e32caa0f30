"""Bedrock batch inference: records to S3 (moto), a job on a fake control plane, results joined on recordId."""

from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest

from eval_pipeline.execution import run_suite
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.bedrock_batch import BedrockBatchSampler
from eval_pipeline.instance import local_instance
from eval_pipeline.suites import load_suite
from tests.fakes.bedrock_batch import FakeBedrockBatch, serve_fake_bedrock_batch

ROLE = "arn:aws:iam::123456789012:role/BedrockBatch"


@pytest.fixture
def batch_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrockBatch]:
    boto3.client("s3").create_bucket(Bucket="batch-bucket")
    with serve_fake_bedrock_batch() as (fake, url):
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", url)
        yield fake


def requests_for(count: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"s{i}", 0, ({"role": "user", "content": f"question {i}"
                                                                       + (" POISON" if i % 10 == 3 else "")},))
            for i in range(count)]


def test_job_results_are_joined_on_record_id_with_errors_kept(batch_env: FakeBedrockBatch) -> None:
    sampler = BedrockBatchSampler("amazon.nova-micro-v1:0", s3_uri="s3://batch-bucket/evals", role_arn=ROLE,
                                  poll_s=0.01, min_records=5)
    progress: list[int] = []
    out = sampler.generate(requests_for(30), GenerationParams(max_tokens=5), progress.append)
    assert len(out) == 30 and sum(progress) == 30
    for i, completion in enumerate(out):
        if i % 10 == 3:
            assert completion.output is None and "400: Malformed input request" in completion.error
        else:
            assert completion.output == f"echo: question {i}" and completion.tokens_out == 3
    [create] = batch_env.creates
    assert create["modelInvocationType"] == "Converse" and create["roleArn"] == ROLE
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="batch-bucket")["Contents"]]
    assert any(k.endswith("/input/records.jsonl") for k in keys) and any(k.endswith(".jsonl.out") for k in keys)


def test_a_failed_job_is_error_rows_with_its_message(batch_env: FakeBedrockBatch) -> None:
    batch_env.fail_jobs = True
    sampler = BedrockBatchSampler("m", s3_uri="s3://batch-bucket/x", role_arn=ROLE, poll_s=0.01, min_records=1)
    out = sampler.generate(requests_for(4), GenerationParams())
    assert all("Failed: The role does not have access" in c.error for c in out)


def test_batch_mode_suite_end_to_end(eval_home: Path, batch_env: FakeBedrockBatch, tmp_path: Path) -> None:
    (tmp_path / "evals").mkdir()
    (tmp_path / "qa.jsonl").write_text("".join(f'{{"id": "q{i}", "prompt": "question {i}", '
                                               f'"answer": "echo: question {i}"}}\n' for i in range(120)))
    (tmp_path / "evals" / "batch.yaml").write_text(
        "suite: batch\ndataset: {uri: qa.jsonl}\nmodels:\n"
        f"  - {{name: nova, backend: bedrock, model: amazon.nova-micro-v1:0, mode: batch, "
        f"batch_s3_uri: 's3://batch-bucket/runs', batch_role_arn: '{ROLE}', batch_poll_s: 0.01}}\n"
        "generation: {max_tokens: 8}\nscorers: [exact_match]\n")
    suite = load_suite(tmp_path / "evals" / "batch.yaml")
    result = run_suite(suite, local_instance())
    assert result.success, result.models[0].error
    assert len(batch_env.creates) == 1  # one job for all 120 records (above the 100-record minimum)
    generations = pd.read_parquet(result.models[0].outputs["generations"])
    assert len(generations) == 120 and generations["error"].isna().all()
    assert result.metrics.iloc[0]["value"] == 1.0
    again = run_suite(suite, local_instance())
    assert again.models[0].generation["cached"] == 120 and len(batch_env.creates) == 1
