"""Reading one Parquet table, local or remote (``s3://``)."""

from __future__ import annotations

import pandas as pd


def read_table(path: str) -> pd.DataFrame | None:
    """The Parquet table at a local path or ``s3://`` URI; None when it does not exist (yet)."""
    import pyarrow.parquet as pq
    from upath import UPath

    target = UPath(path)
    if not target.exists():
        return None
    with target.open("rb") as handle:
        return pq.read_table(handle).to_pandas()
