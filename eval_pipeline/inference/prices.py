"""A price table shared by suites: ``$EVAL_PIPELINE_PRICES`` names a YAML file of model → USD per 1M tokens.

    amazon.nova-micro-v1:0: {input_per_1m: 0.035, output_per_1m: 0.14}
    my-endpoint: {input_per_1m: 0.0, output_per_1m: 0.0}

A model's own ``price`` wins; otherwise its ``model`` (or SageMaker ``endpoint``) is looked up here.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.remote import Price

PRICES_ENV = "EVAL_PIPELINE_PRICES"


def load_price_table(path: str | Path | None = None) -> dict[str, Price]:
    """The table at ``path`` (default ``$EVAL_PIPELINE_PRICES``); empty when neither is set."""
    path = path or os.environ.get(PRICES_ENV)
    if not path:
        return {}
    file = Path(path)
    if not file.is_file():
        raise EvalInputError("price table not found", file=str(file))
    raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise EvalInputError("a price table maps model ids to {input_per_1m, output_per_1m}", file=str(file))
    table = {}
    for model, entry in raw.items():
        try:
            table[str(model)] = Price(float(entry["input_per_1m"]), float(entry["output_per_1m"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise EvalInputError(f"needs numeric input_per_1m and output_per_1m ({exc})", file=str(file),
                                 field=str(model)) from None
    return table
