"""What the AWS backends share: clients with our own retries, credential checks, error classification."""

from __future__ import annotations

from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.remote import PermanentError, RemoteSampler, TransientError

THROTTLING_CODES = {"ThrottlingException", "TooManyRequestsException", "Throttling", "ServiceQuotaExceededException",
                    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "SlowDown"}
TRANSIENT_CODES = {"ServiceUnavailableException", "ServiceUnavailable", "InternalServerException",
                   "InternalFailure", "InternalServerError", "ModelTimeoutException", "ModelNotReadyException",
                   "RequestTimeout", "RequestTimeoutException"}


class AwsSampler(RemoteSampler):
    """A remote sampler over one boto3 client of ``service``, shared by all worker threads."""

    service = ""

    def __init__(self, *, region: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.region = region
        self._client: Any = None

    def preflight(self) -> None:
        check_credentials(self.service, self.region)

    def prepare(self) -> None:
        """Build the client once, before the pool starts (boto3 clients are thread-safe; one costs ~0.7 s CPU)."""
        if self._client is None:
            self._client = aws_client(self.service, region=self.region, timeout_s=self.timeout_s,
                                      n_concurrent=self.n_concurrent)

    @property
    def client(self) -> Any:
        self.prepare()
        return self._client


def aws_client(service: str, *, region: str | None, timeout_s: float, n_concurrent: int) -> Any:
    """A boto3 client on the standard credential chain and region; endpoint overrides come from the standard
    ``AWS_ENDPOINT_URL_<SERVICE>`` variables. botocore's own retries are off: ours honour throttling."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, read_timeout=timeout_s, connect_timeout=min(timeout_s, 10.0),
                    max_pool_connections=max(10, n_concurrent))
    return boto3.session.Session().client(service, region_name=region, config=config)


def check_credentials(service: str, region: str | None) -> None:
    """A clear error before any work when no credentials or no region can be found."""
    import boto3

    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        raise EvalInputError(
            f"no AWS credentials found for {service}: set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or run where an instance or container role is available", field="backend")
    if session.region_name is None:
        raise EvalInputError(f"no AWS region for {service}: set 'region' on the model or AWS_REGION",
                             field="region")


def classify_aws_error(exc: Exception, where: str) -> Exception:
    """The TransientError or PermanentError that a botocore failure amounts to."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        retry_after = _retry_after(exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}))
        if code in THROTTLING_CODES or status == 429:
            return TransientError(f"{where}: throttled ({code}: {message})", throttled=True,
                                  retry_after_s=retry_after)
        if code in TRANSIENT_CODES or status >= 500:
            return TransientError(f"{where}: {code} (HTTP {status}): {message}", retry_after_s=retry_after)
        return PermanentError(f"{where}: {code} (HTTP {status}): {message}")
    if isinstance(exc, ReadTimeoutError | ConnectionError):
        return TransientError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, BotoCoreError):
        return PermanentError(f"{where}: {type(exc).__name__}: {exc}")
    return exc


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
