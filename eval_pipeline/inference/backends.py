"""Building the sampler a model spec asks for."""

from __future__ import annotations

import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import Sampler
from eval_pipeline.suites.spec import BACKENDS, ModelSpec, Suite


def build_sampler(suite: Suite, spec: ModelSpec, samples: pd.DataFrame) -> Sampler:
    """The sampler for one model of a suite; ``samples`` feeds the precomputed backend."""
    if spec.backend == "local":
        from eval_pipeline.inference.local import LocalSampler

        model = spec.model or ""
        local_path = suite.resolve_path(model)
        return LocalSampler(str(local_path) if local_path.exists() else model, batch_size=spec.batch_size,
                            device=spec.device, dtype=spec.dtype)
    if spec.backend == "precomputed":
        from eval_pipeline.inference.precomputed import PrecomputedSampler

        if spec.responses:
            return PrecomputedSampler.from_file(suite.resolve_uri(spec.responses))
        return PrecomputedSampler.from_dataset(samples, spec.model_identifier)
    raise EvalInputError(f"unknown backend {spec.backend!r}; known backends: {', '.join(BACKENDS)}",
                         file=suite.source_path, field=f"models.{spec.name}.backend")
