"""The request cache as a Dagster resource."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.inference.cache import RequestCache


class GenerationCacheResource(dg.ConfigurableResource):
    """Finished requests keyed by request hash, shared by every run that opens the same location: an SQLite file
    (a path or ``sqlite:///…``: the runs of one machine) or ``postgresql://…?namespace=…`` (every worker)."""

    path: str
    """The cache's location: a path, or a URL whose scheme names the store (``CACHE_STORES``)."""
    enabled: bool = True

    def open(self) -> RequestCache | None:
        return RequestCache(self.path) if self.enabled else None
