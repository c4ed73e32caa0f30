"""The forest plot of a ``comparison`` table, drawn on the Agg backend without touching pyplot's global state.

The metrics plot of each run is an SVG written without matplotlib: ``eval_pipeline.tracking.metrics_plot``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval_pipeline.tracking.metrics_plot import column_or_null, float_array


def _note_figure(note: str) -> Figure:
    fig = Figure(figsize=(6.0, 2.0))
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, note, ha="center", va="center", fontsize=12)
    return fig


MAX_ROWS_PER_COMPARISON_PANEL = 60
_BETTER_COLOR = "#2ca02c"
_WORSE_COLOR = "#d62728"
_UNCLEAR_COLOR = "#555555"


def comparison_figure(comparison: pd.DataFrame) -> Figure:
    """A forest plot of a COMPARISON table: one panel per model, one row per metric (and baseline) with the
    difference as a point, its CI as a horizontal line, a vertical line at 0, and p-value (Holm-adjusted beside
    it), n and test annotated at the right. A row is green (better) or red (worse) when its procedure finds a
    difference (``comparison_direction``), else grey. An empty table gives a note."""
    if comparison is None or comparison.empty or "metric" not in comparison.columns:
        return _note_figure("no comparisons to plot")
    frame = comparison.reset_index(drop=True)
    named = column_or_null(frame, "model")
    models = named.astype(object).where(named.notna(), "?").astype(str)
    names = list(dict.fromkeys(models))
    panels = [(name, frame[models == name].head(MAX_ROWS_PER_COMPARISON_PANEL), int((models == name).sum()))
              for name in names]
    heights = [max(len(rows), 1) + 1.2 for _, rows, _ in panels]
    fig = Figure(figsize=(9.0, min(max(0.3 * sum(heights) + 0.6, 2.5), 120.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (name, rows, total) in zip(axes, panels, strict=True):
        _draw_forest_panel(ax, name, rows, total)
    return fig


def comparison_direction(ci_low: float, ci_high: float, p_value: float, alpha: float = 0.05) -> int:
    """+1 (better) or −1 (worse) when the comparison's procedure finds a difference, else 0. The interval and p
    come from one procedure and agree (the CI excludes 0 exactly when p < alpha); a row where they do not (a table
    from an older release) is shown as no difference rather than as one."""
    if math.isnan(ci_low) or math.isnan(ci_high) or not (math.isnan(p_value) or p_value < alpha):
        return 0
    return 1 if ci_low > 0 else -1 if ci_high < 0 else 0


def _draw_forest_panel(ax, model: str, rows: pd.DataFrame, total: int) -> None:
    """Points, CI lines and annotations of one model's comparisons on ``ax``."""
    baselines = list(dict.fromkeys(str(b) for b in column_or_null(rows, "baseline") if not pd.isna(b)))
    title = f"{model} vs {baselines[0]}" if len(baselines) == 1 else model
    if total > len(rows):
        title += f" (first {len(rows)} rows; {total - len(rows)} more not shown)"
    ax.set_title(title, fontsize=10, loc="left")
    diff = float_array(column_or_null(rows, "diff"))
    low, high = float_array(column_or_null(rows, "ci_low")), float_array(column_or_null(rows, "ci_high"))
    positions = np.arange(len(rows))
    labels = [str(metric) if len(baselines) <= 1 else f"{metric} vs {baseline}"
              for metric, baseline in zip(column_or_null(rows, "metric"), column_or_null(rows, "baseline"),
                                          strict=True)]
    p_values, counts = float_array(column_or_null(rows, "p_value")), float_array(column_or_null(rows, "n"))
    colors = [{1: _BETTER_COLOR, -1: _WORSE_COLOR}.get(comparison_direction(lo, hi, p), _UNCLEAR_COLOR)
              for lo, hi, p in zip(low, high, p_values, strict=True)]
    has_ci = ~np.isnan(low) & ~np.isnan(high)
    ax.hlines(positions[has_ci], low[has_ci], high[has_ci], colors=np.array(colors, dtype=object)[has_ci],
              linewidth=1.6)
    for side in (low, high):
        shown = ~np.isnan(side)
        ax.plot(side[shown], positions[shown], linestyle="none", marker="|", markersize=6,
                color=_UNCLEAR_COLOR)
    shown = ~np.isnan(diff)
    ax.scatter(diff[shown], positions[shown], c=np.array(colors, dtype=object)[shown], s=28, zorder=3)
    ax.axvline(0.0, color="#888888", linewidth=0.8, linestyle="--")
    ax.set_yticks(positions, labels=labels, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    extent = np.concatenate([diff, low, high, [0.0]])
    extent = extent[~np.isnan(extent)]
    left, right = float(extent.min()), float(extent.max())
    span = (right - left) or 1.0
    ax.set_xlim(left - 0.05 * span, right + 0.05 * span)
    annotate = ax.get_yaxis_transform()  # x in axes fraction, y in data
    p_holm = float_array(column_or_null(rows, "p_holm"))
    for position, value, p_value, adjusted, n, test in zip(positions, diff, p_values, p_holm, counts,
                                                           column_or_null(rows, "test"), strict=True):
        parts = ["diff n/a" if math.isnan(value) else f"{value:+.3g}"]
        parts.append("p n/a" if math.isnan(p_value) else f"p={p_value:.2g}")
        if not math.isnan(adjusted):
            parts.append(f"Holm p={adjusted:.2g}")
        if not math.isnan(n):
            parts.append(f"n={int(n)}")
        if not pd.isna(test):
            parts.append(str(test))
        ax.text(1.01, position, "  ".join(parts), transform=annotate, va="center", ha="left", fontsize=7,
                clip_on=False)
    ax.set_xlabel("difference (model − baseline)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
