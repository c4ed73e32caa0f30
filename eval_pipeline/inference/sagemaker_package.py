"""The ``sagemaker_package`` backend: a model package (or JumpStart hub model) ARN served on a temporary SageMaker
endpoint that this run creates before its first request and deletes after its last, as the notebook's
"Model Package ARN" path does. Endpoints a killed run left behind are removed before anything else."""

from __future__ import annotations

from typing import Any

from eval_pipeline.inference.aws import aws_client, check_credentials
from eval_pipeline.inference.backend_registry import Backend, SpecKey
from eval_pipeline.inference.base import HostedForOneStream
from eval_pipeline.inference.model_package import resolve_hosting
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths
from eval_pipeline.inference.sagemaker import SageMakerSampler
from eval_pipeline.inference.temporary_endpoint import TemporaryEndpoint, remove_abandoned_endpoints


class SageMakerPackageSampler(HostedForOneStream, SageMakerSampler):
    backend = "sagemaker_package"

    def __init__(self, package_arn: str, *, model_artifact: str | None = None, instance_type: str | None = None,
                 startup_timeout_s: float = 900.0, poll_s: float = 15.0, **options: Any) -> None:
        super().__init__("", **options)
        self.package_arn, self.model_artifact, self.instance_type = package_arn, model_artifact, instance_type
        self.startup_timeout_s, self.poll_s = startup_timeout_s, poll_s
        self.temporary: TemporaryEndpoint | None = None
        self._control: Any = None

    def identity(self) -> dict[str, Any]:
        """The package (and artifact) rather than the endpoint: each run's endpoint has a new name, the model is
        the same, so cached answers stay valid."""
        identity = {key: value for key, value in super().identity().items() if key != "endpoint"}
        return {**identity, "backend": self.backend, "package": self.package_arn, "artifact": self.model_artifact}

    @property
    def control(self) -> Any:
        """The SageMaker control-plane client (``AWS_ENDPOINT_URL_SAGEMAKER`` applies)."""
        if self._control is None:
            self._control = aws_client("sagemaker", region=self.region, timeout_s=self.timeout_s, n_concurrent=1)
        return self._control

    def preflight(self) -> None:
        """Credentials, then the endpoints that dead runs of this host left behind are removed."""
        check_credentials("sagemaker", self.region)
        remove_abandoned_endpoints(self.control)

    def prepare(self) -> None:
        if self.temporary is None:
            hosting = resolve_hosting(self.control, self.package_arn).with_artifact(self.model_artifact)
            self.temporary = TemporaryEndpoint(self.control, hosting, instance_type=self.instance_type,
                                               timeout_s=self.startup_timeout_s, poll_s=self.poll_s).start()
            self.endpoint = self.temporary.name
        super().prepare()

    def close(self) -> None:
        """Delete the endpoint, its config and its model (the next ``prepare`` creates new ones)."""
        temporary, self.temporary = self.temporary, None
        if temporary is not None:
            temporary.delete()
            self.endpoint = ""


def _build_sampler(spec: ModelSpec, suite: SuitePaths | None, samples: object = None) -> SageMakerPackageSampler:
    from eval_pipeline.inference.backend_options import remote_options

    return SageMakerPackageSampler(spec.model or "", model_artifact=spec.model_artifact,
                                   instance_type=spec.instance_type,
                                   startup_timeout_s=spec.server_startup_timeout_s,
                                   request_format=spec.request_format, request_template=spec.request_template,
                                   response_path=spec.response_path, region=spec.region, **remote_options(spec))


BACKEND = Backend(
    name="sagemaker_package", build=_build_sampler, remote=True, tools=True,  # tools: the messages request format
    needs=(SpecKey("model", "a SageMaker model package ARN (or a JumpStart hub-content Model ARN)"),),
    temperature=(0.0, None),
)
"""A model package on a temporary SageMaker endpoint, as ``backend_registry`` finds it."""
