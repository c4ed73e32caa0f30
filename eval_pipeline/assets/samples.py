"""The ``[suite, samples]`` asset: ingestion and format conversion."""

import hashlib
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import preview
from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks.base import suite_samples
from eval_pipeline.tasks.stage_versions import stage_version


class SamplesConfig(dg.Config):
    limit: int | None = None
    """Keep only the first N items (overrides the suite's dataset.limit)."""
    sample_ids: list[str] | None = None
    """Keep only these items (by ``sample_id``): the sessions a log-group sensor found complete."""


def build_samples_asset(suite: Suite) -> dg.AssetsDefinition:
    uri = suite.resolve_uri(suite.dataset.uri)

    @dg.asset(key=[suite.suite, "samples"], group_name=suite.suite, kinds={"parquet"},
              code_version=stage_version(suite, "samples"),
              description=f"Items of {suite.dataset.uri} in the canonical samples table.")
    def samples(context: dg.AssetExecutionContext, config: SamplesConfig) -> dg.Output[pd.DataFrame]:
        frame = require_items(suite_samples(suite, config.limit, config.sample_ids), uri)
        context.log.info(f"{len(frame)} samples from {uri}")
        digest = dataset_digest(frame)  # the data version: a dataset that did not change is not a new version
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)  # Output(data_version=) is beta in Dagster 1.13
            return dg.Output(frame, data_version=dg.DataVersion(digest), metadata={
                "num_samples": len(frame),
                "dataset_uri": uri,
                "dataset_digest": digest,
                "preview": preview(frame, ["sample_id", "input", "reference", "category"]),
            })

    return samples


def dataset_digest(samples: pd.DataFrame) -> str:
    """A short digest of the dataset's content, for lineage."""
    return hashlib.sha256("".join(samples["row_hash"]).encode()).hexdigest()[:16]


def require_items(samples: pd.DataFrame, uri: str) -> pd.DataFrame:
    """The samples, or an input error naming the dataset when it has no item: an empty evaluation measures
    nothing, and must not succeed."""
    if samples.empty:
        raise EvalInputError("the dataset has no items: nothing to evaluate", file=uri, field="dataset.uri")
    return samples


def refuse_empty_local_file(uri: str, chunk: int = 1 << 16) -> None:
    """An input error when ``uri`` is one local file holding nothing but whitespace (and a byte-order mark): told
    at load, without reading the dataset. Other URIs (globs, folders, s3://) are checked by the samples step."""
    path = Path(uri)
    if "://" in uri or any(c in uri for c in "*?[") or not path.is_file():
        return
    with path.open("rb") as handle:
        data = handle.read(chunk).removeprefix(b"\xef\xbb\xbf")
        while data:
            if data.strip():
                return
            data = handle.read(chunk)
    require_items(pd.DataFrame(), uri)
