"""Dagster metadata for stage tables: previews and metric summaries."""

from __future__ import annotations

import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10
_CELL_CHARS = 80


def preview(frame: pd.DataFrame, columns: list[str] | None = None) -> dg.MetadataValue:
    shown = frame[columns] if columns else frame
    return dg.MetadataValue.md(markdown_table(shown.head(PREVIEW_ROWS)))


def markdown_table(frame: pd.DataFrame) -> str:
    """A small markdown table with long cells cut short (no extra dependency)."""
    if frame.empty:
        return "_(no rows)_"
    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def metrics_summary(metrics: pd.DataFrame) -> str:
    """The metrics table as markdown: value with its 95% CI, n and errors; breakdown rows labelled."""
    if metrics.empty:
        return "_(no metrics)_"
    rows = []
    for row in metrics.itertuples(index=False):
        label = row.metric if row.breakdown_key is None or pd.isna(row.breakdown_key) else (
            f"{row.metric} [{row.breakdown_key}={row.breakdown_value}]")
        ci = "" if pd.isna(row.ci_low) else f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
        rows.append({"metric": label, "value": f"{row.value:.3f}" if not pd.isna(row.value) else "",
                     "95% CI": ci, "n": row.n, "errors": row.errors})
    return markdown_table(pd.DataFrame(rows))
