"""The ``[suite, samples]`` asset: ingestion and format conversion."""

import hashlib

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import preview
from eval_pipeline.data.formats import load_samples
from eval_pipeline.suites.spec import Suite


class SamplesConfig(dg.Config):
    limit: int | None = None
    """Keep only the first N items (overrides the suite's dataset.limit)."""


def build_samples_asset(suite: Suite) -> dg.AssetsDefinition:
    uri = suite.resolve_uri(suite.dataset.uri)

    @dg.asset(key=[suite.suite, "samples"], group_name=suite.suite, kinds={"parquet"},
              description=f"Items of {suite.dataset.uri} in the canonical samples table.")
    def samples(context: dg.AssetExecutionContext, config: SamplesConfig) -> dg.Output[pd.DataFrame]:
        frame = load_samples(uri, suite.dataset.format, config.limit or suite.dataset.limit)
        context.log.info(f"{len(frame)} samples from {uri}")
        return dg.Output(frame, metadata={
            "num_samples": len(frame),
            "dataset_uri": uri,
            "dataset_digest": dataset_digest(frame),
            "preview": preview(frame, ["sample_id", "input", "reference", "category"]),
        })

    return samples


def dataset_digest(samples: pd.DataFrame) -> str:
    """A short digest of the dataset's content, for lineage."""
    return hashlib.sha256("".join(samples["row_hash"]).encode()).hexdigest()[:16]
