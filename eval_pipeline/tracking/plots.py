"""Plots of the ``metrics`` table, drawn on the Agg backend without touching pyplot's global state."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_BARS_PER_PANEL = 40
_OVERALL_COLOR = "#1f77b4"
_BREAKDOWN_COLOR = "#9ecae1"


def metrics_figure(metrics: pd.DataFrame) -> Figure:
    """One horizontal bar panel per metric: the overall value, then each breakdown value, with CI error bars
    and ``n`` annotated. An empty table gives a figure with a note."""
    if metrics is None or metrics.empty or "metric" not in metrics.columns:
        return _note_figure("no metrics to plot")
    frame = metrics.reset_index(drop=True)
    names = list(dict.fromkeys(str(name) for name in frame["metric"]))
    panels = [(name, _panel_rows(frame[frame["metric"].astype(str) == name])) for name in names]
    heights = [max(len(rows), 1) + 1.2 for _, rows in panels]
    fig = Figure(figsize=(8.0, min(max(0.32 * sum(heights) + 0.6, 2.5), 120.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (name, rows) in zip(axes, panels, strict=True):
        _draw_panel(ax, name, rows)
    return fig


def _panel_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The bars of one metric: overall rows first, then breakdown rows sorted by key and value."""
    key = _column(rows, "breakdown_key")
    overall = rows[key.isna()]
    breakdown = rows[key.notna()].copy()
    if not breakdown.empty:
        breakdown["_key"] = breakdown["breakdown_key"].astype(str)
        breakdown["_value"] = _column(breakdown, "breakdown_value").astype(str)
        breakdown = breakdown.sort_values(["_key", "_value"], kind="stable")
    labels = ["overall"] * len(overall) + [
        f"{k}={v}" for k, v in zip(breakdown.get("_key", []), breakdown.get("_value", []), strict=True)
    ]
    out = pd.concat([overall, breakdown], ignore_index=True)
    out["_label"] = labels
    out["_overall"] = [True] * len(overall) + [False] * len(breakdown)
    return out


def _draw_panel(ax, name: str, rows: pd.DataFrame) -> None:
    """Bars, error bars and ``n`` labels of one metric on ``ax``."""
    hidden = max(len(rows) - MAX_BARS_PER_PANEL, 0)
    rows = rows.head(MAX_BARS_PER_PANEL)
    title = name if not hidden else f"{name} (first {MAX_BARS_PER_PANEL} bars; {hidden} more not shown)"
    ax.set_title(title, fontsize=10, loc="left")
    if rows.empty:
        ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    values = _floats(_column(rows, "value"))
    low, high = _floats(_column(rows, "ci_low")), _floats(_column(rows, "ci_high"))
    shown = np.nan_to_num(values, nan=0.0)
    lower = np.clip(np.where(np.isnan(low), 0.0, shown - low), 0.0, None)
    upper = np.clip(np.where(np.isnan(high), 0.0, high - shown), 0.0, None)
    positions = np.arange(len(rows))
    colors = [_OVERALL_COLOR if overall else _BREAKDOWN_COLOR for overall in rows["_overall"]]
    ax.barh(positions, shown, color=colors, xerr=np.vstack([lower, upper]), capsize=3,
            error_kw={"elinewidth": 1, "ecolor": "#333333"})
    ax.set_yticks(positions, labels=[str(label) for label in rows["_label"]], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.0, color="#888888", linewidth=0.8)
    extent = np.concatenate([shown, shown + upper, shown - lower])
    left, right = min(float(extent.min()), 0.0), max(float(extent.max()), 0.0)
    span = (right - left) or 1.0
    ax.set_xlim(left - 0.02 * span, right + 0.22 * span)
    counts = _column(rows, "n")
    ends = np.maximum(shown, shown + upper)
    for position, value, top, n in zip(positions, values, ends, counts, strict=True):
        label = "n/a" if math.isnan(value) else f"{value:.3g}"
        if not pd.isna(n):
            label += f"  n={int(n)}"
        ax.text(top + 0.01 * span, position, label, va="center", fontsize=7)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-null when the table lacks it."""
    if name in rows.columns:
        return rows[name]
    return pd.Series([None] * len(rows), index=rows.index, dtype=object)


def _floats(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _note_figure(note: str) -> Figure:
    fig = Figure(figsize=(6.0, 2.0))
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, note, ha="center", va="center", fontsize=12)
    return fig
