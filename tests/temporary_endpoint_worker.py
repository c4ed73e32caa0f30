"""The process the kill -9 test kills: a model package's answers through the ``sagemaker_package`` backend (which
creates a temporary endpoint), with the AWS endpoints taken from the environment.

``python -m tests.temporary_endpoint_worker PACKAGE_ARN``: prints ``DONE`` if it ever finishes.
"""

from __future__ import annotations

import sys

from eval_pipeline.inference.backend_registry import backend
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.sdk.models import resolve_model


def main(package_arn: str) -> None:
    spec = resolve_model(package_arn)
    sampler = backend(spec.backend).build(spec, None, None)
    sampler.preflight()
    requests = [GenerationRequest(sample_id="q0", sample_index=0, messages=({"role": "user", "content": "Hello?"},))]
    sampler.generate(requests, GenerationParams(max_tokens=16))
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
