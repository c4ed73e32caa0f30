"""Shards of a suite's items: which shard an item belongs to, a shard's rows, and the shards' tables put back
together in the dataset's order.

An item's shard depends on its ``sample_id`` and the shard count only (SHA-256, not Python's seeded ``hash``), so
every process agrees on it, and appending rows to a dataset never moves an old row to another shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd


def shard_of(sample_id: str, shards: int) -> int:
    """The shard (0 .. shards - 1) of an item: the first 8 bytes of SHA-256 of its id, big-endian, mod ``shards``."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    digest = hashlib.sha256(str(sample_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_rows(samples: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """The rows of ``samples`` in shard ``shard`` of ``shards``, in their order (possibly none)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of 0 .. {shards - 1}")
    if shards == 1:
        return samples
    mask = [shard_of(sample_id, shards) == shard for sample_id in samples["sample_id"]]
    return samples[pd.Series(mask, index=samples.index, dtype=bool)].reset_index(drop=True)


def in_sample_order(frame: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s rows in the order of their items in ``samples`` (stable: an item's rows keep their order), which
    is the order one unsharded run writes them in."""
    if frame.empty or "sample_id" not in frame.columns:
        return frame.reset_index(drop=True)
    position = {sample_id: index for index, sample_id in enumerate(samples["sample_id"])}
    order = frame["sample_id"].map(position).fillna(len(position))
    return frame.iloc[order.argsort(kind="stable").to_numpy()].reset_index(drop=True)


def concat_shards(frames: Iterable[pd.DataFrame], samples: pd.DataFrame) -> pd.DataFrame:
    """The shards' tables of one model as one table, in the items' order: what one unsharded run would have made.
    Empty shards add nothing (their columns only, when every shard is empty)."""
    frames = list(frames)
    if not frames:
        return pd.DataFrame()
    filled = [frame for frame in frames if not frame.empty]
    if not filled:
        return frames[0].iloc[0:0].reset_index(drop=True)
    return in_sample_order(pd.concat(filled, ignore_index=True), samples)
