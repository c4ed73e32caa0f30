"""The request cache as a Dagster resource."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.inference.cache import RequestCache


class GenerationCacheResource(dg.ConfigurableResource):
    """Finished generations keyed by request hash, shared by every run on this machine."""

    path: str
    enabled: bool = True

    def open(self) -> RequestCache | None:
        return RequestCache(self.path) if self.enabled else None
