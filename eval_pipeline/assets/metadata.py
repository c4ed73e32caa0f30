"""Dagster metadata for stage tables: previews, metric summaries, metric values the UI plots, the MLflow run."""

from __future__ import annotations

import math

import dagster as dg
import pandas as pd

from eval_pipeline.tracking.run_links import experiment_of, run_page_url, serves_pages

PREVIEW_ROWS = 10
_CELL_CHARS = 80
METRIC_PREFIX = "metric/"
MAX_PLOTTED_METRICS = 50
"""At most this many metrics get numeric entries (each up to four: value, ci_low, ci_high, n), in table order."""
MLFLOW_RUN_KEY = "mlflow_run"


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


def metric_values(metrics: pd.DataFrame) -> dict[str, float | int]:
    """The overall rows (no breakdown) as numeric entries Dagster charts across materializations:
    ``metric/<name>`` = value, ``metric/<name>/ci_low``, ``…/ci_high`` (floats) and ``…/n`` (int). A missing value
    (NaN) gets no entry; breakdown rows get none (their count is unbounded); a metric listed twice keeps its first."""
    if metrics.empty:
        return {}
    overall = metrics[metrics["breakdown_key"].isna()].drop_duplicates("metric")
    entries: dict[str, float | int] = {}
    for row in overall.head(MAX_PLOTTED_METRICS).itertuples(index=False):
        key = f"{METRIC_PREFIX}{row.metric}"
        for name, value in ((key, row.value), (f"{key}/ci_low", row.ci_low), (f"{key}/ci_high", row.ci_high)):
            if value is not None and not pd.isna(value) and math.isfinite(float(value)):
                entries[name] = float(value)
        if row.n is not None and not pd.isna(row.n):
            entries[f"{key}/n"] = int(row.n)
    return entries


def mlflow_run_metadata(tracking_uri: str, run_id: str | None,
                        experiment_id: str | None = None) -> dict[str, dg.MetadataValue]:
    """The MLflow run as a link to its page when the tracking URI is an http(s) server, else its id as text
    (nothing when no run was logged). The experiment id is asked of the server when not given."""
    if not run_id:
        return {}
    if serves_pages(tracking_uri):
        try:
            experiment_id = experiment_id or experiment_of(tracking_uri, run_id)
        except Exception:  # the server went away after logging: the id still names the run
            return {MLFLOW_RUN_KEY: dg.MetadataValue.text(run_id)}
        return {MLFLOW_RUN_KEY: dg.MetadataValue.url(run_page_url(tracking_uri, experiment_id, run_id) or "")}
    return {MLFLOW_RUN_KEY: dg.MetadataValue.text(run_id)}
