"""A dataset given as a SageMaker AI Registry ARN (``arn:aws:sagemaker:<region>:<account>:hub-content/AIRegistry/
DataSet/<name>/<version>``), resolved to the S3 location its hub content document names (``DatasetS3Bucket`` and
``DatasetS3Prefix``, a file or a prefix), which the ``s3://`` source then reads through boto3."""

from __future__ import annotations

import json

from eval_pipeline.data.sagemaker_arns import describe_hub_content, hub_content_arn
from eval_pipeline.errors import EvalInputError

DATASET_CONTENT_TYPE = "DataSet"


def is_dataset_arn(text: str) -> bool:
    return hub_content_arn(text, DATASET_CONTENT_TYPE) is not None


def resolve_dataset_arn(arn: str, *, client: object | None = None) -> str:
    """The ``s3://`` URI of the AI Registry dataset ``arn`` (``DescribeHubContent`` in the ARN's region).

    Raises:
        EvalInputError: not a dataset ARN, or a document without an S3 location (naming field ``dataset``).
    """
    ref = hub_content_arn(arn, DATASET_CONTENT_TYPE)
    if ref is None:
        raise EvalInputError(f"{arn!r} is not an AI Registry dataset ARN "
                             "(arn:aws:sagemaker:<region>:<account>:hub-content/<hub>/DataSet/<name>/<version>)",
                             field="dataset")
    if client is None:
        import boto3

        client = boto3.session.Session().client("sagemaker", region_name=ref.region)
    try:
        described = describe_hub_content(client, ref)
    except Exception as exc:
        raise EvalInputError(f"dataset {arn}: DescribeHubContent failed: {exc}", field="dataset") from exc
    try:
        document = json.loads(described.get("HubContentDocument") or "{}")
    except ValueError as exc:
        raise EvalInputError(f"dataset {arn}: its hub content document is not JSON: {exc}", field="dataset") from exc
    bucket, prefix = document.get("DatasetS3Bucket"), (document.get("DatasetS3Prefix") or "").lstrip("/")
    if not bucket:
        raise EvalInputError(f"dataset {arn}: its hub content document names no DatasetS3Bucket", field="dataset")
    return f"s3://{bucket}/{prefix}"
