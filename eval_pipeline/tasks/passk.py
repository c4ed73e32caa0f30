"""pass@k and pass^k rows appended to a task kind's metrics when the suite asks for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from eval_pipeline.metrics.passk_table import pass_k_rows

if TYPE_CHECKING:
    from eval_pipeline.suites.spec import Suite


def with_pass_k(suite: Suite, table: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``table`` followed by ``<scorer>.pass@k`` and ``<scorer>.pass^k`` rows for each of ``suite.pass_k``."""
    if not suite.pass_k:
        return table
    rows = pass_k_rows(scores, suite.pass_k, suite=suite.suite, success_threshold=suite.success_threshold)
    return pd.concat([table, rows], ignore_index=True)
