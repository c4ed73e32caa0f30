"""Settings every backend builder draws from a model spec: where its model lives, its price, a remote call's options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eval_pipeline.inference.prices import load_price_table
from eval_pipeline.inference.remote import Price, RetryPolicy

if TYPE_CHECKING:
    from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths


def model_location(spec: ModelSpec, suite: SuitePaths | None) -> str:
    """A local model directory (relative to the project root) if there is one, else the name as given."""
    model = spec.model or ""
    local_path = suite.resolve_path(model) if suite is not None else None
    return str(local_path) if local_path is not None and local_path.exists() else model


def model_price(spec: ModelSpec) -> Price | None:
    """The model's own price, else its entry in the shared price table (``$EVAL_PIPELINE_PRICES``)."""
    if spec.price:
        return Price(spec.price.input_per_1m, spec.price.output_per_1m)
    table = load_price_table()
    return table.get(spec.model or "") or table.get(spec.endpoint or "")


def remote_options(spec: ModelSpec) -> dict[str, Any]:
    """A remote sampler's concurrency, timeout, retries and price, as keyword arguments."""
    return {"n_concurrent": spec.n_concurrent, "timeout_s": spec.timeout_s,
            "retry": RetryPolicy(max_attempts=spec.max_attempts), "price": model_price(spec)}
