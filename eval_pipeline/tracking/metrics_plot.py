"""The metrics plot of a run as an SVG document, written directly (no plotting library to import): one panel of
horizontal bars per metric, the overall value first, then each breakdown value, with the 95% interval as an error
bar and the value and ``n`` written beside each bar."""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

MAX_BARS_PER_PANEL = 40
OVERALL_COLOR = "#1f77b4"
BREAKDOWN_COLOR = "#9ecae1"

_WIDTH = 800
_LABEL_WIDTH = 190
_PLOT_LEFT, _PLOT_RIGHT = _LABEL_WIDTH + 10, _WIDTH - 20
_TITLE_HEIGHT, _BAR_PITCH, _AXIS_HEIGHT, _GAP = 22, 20, 22, 14
_FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


def metrics_svg(metrics: pd.DataFrame) -> str:
    """The plot of a METRICS table (``metric``, ``value``, ``ci_low``, ``ci_high``, ``n``, ``breakdown_key``,
    ``breakdown_value``); an empty table gives a plot with a note."""
    if metrics is None or metrics.empty or "metric" not in metrics.columns:
        return _document(["<text x='20' y='40' font-size='14'>no metrics to plot</text>"], 70)
    frame = metrics.reset_index(drop=True)
    names = list(dict.fromkeys(str(name) for name in frame["metric"]))
    parts, top = [], 10
    for name in names:
        rows = panel_rows(frame[frame["metric"].astype(str) == name])
        drawn, top = _panel(name, rows, top)
        parts += drawn
    return _document(parts, top)


def panel_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The bars of one metric: overall rows first, then breakdown rows sorted by key and value; ``_label`` names
    each bar and ``_overall`` tells them apart."""
    key = column_or_null(rows, "breakdown_key")
    overall = rows[key.isna()]
    breakdown = rows[key.notna()].copy()
    if not breakdown.empty:
        breakdown["_key"] = breakdown["breakdown_key"].astype(str)
        breakdown["_value"] = column_or_null(breakdown, "breakdown_value").astype(str)
        breakdown = breakdown.sort_values(["_key", "_value"], kind="stable")
    labels = ["overall"] * len(overall) + [
        f"{k}={v}" for k, v in zip(breakdown.get("_key", []), breakdown.get("_value", []), strict=True)
    ]
    out = pd.concat([overall, breakdown], ignore_index=True)
    out["_label"] = labels
    out["_overall"] = [True] * len(overall) + [False] * len(breakdown)
    return out


def _panel(name: str, rows: pd.DataFrame, top: int) -> tuple[list[str], int]:
    """The SVG elements of one metric's panel starting at ``top``, and where the next panel starts."""
    hidden = max(len(rows) - MAX_BARS_PER_PANEL, 0)
    rows = rows.head(MAX_BARS_PER_PANEL)
    title = name if not hidden else f"{name} (first {MAX_BARS_PER_PANEL} bars; {hidden} more not shown)"
    parts = [f"<text x='10' y='{top + 15}' font-size='13' font-weight='bold'>{escape(title)}</text>"]
    top += _TITLE_HEIGHT
    if rows.empty:
        parts.append(f"<text x='{_PLOT_LEFT}' y='{top + 14}' font-size='11'>no rows</text>")
        return parts, top + _BAR_PITCH + _GAP
    values = float_array(column_or_null(rows, "value"))
    shown = np.nan_to_num(values, nan=0.0)
    low, high = float_array(column_or_null(rows, "ci_low")), float_array(column_or_null(rows, "ci_high"))
    lower = np.clip(np.where(np.isnan(low), 0.0, shown - low), 0.0, None)
    upper = np.clip(np.where(np.isnan(high), 0.0, high - shown), 0.0, None)
    extent = np.concatenate([shown, shown + upper, shown - lower])
    left, right = min(float(extent.min()), 0.0), max(float(extent.max()), 0.0)
    span = (right - left) or 1.0
    scale = _Scale(left - 0.02 * span, right + 0.22 * span)
    bottom = top + len(rows) * _BAR_PITCH
    for tick in _ticks(left, right):
        x = scale(tick)
        parts.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{bottom}' stroke='#dddddd'/>")
        parts.append(f"<text x='{x:.1f}' y='{bottom + 14}' font-size='10' text-anchor='middle'>{tick:.3g}</text>")
    zero = scale(0.0)
    parts.append(f"<line x1='{zero:.1f}' y1='{top}' x2='{zero:.1f}' y2='{bottom}' stroke='#888888'/>")
    counts = column_or_null(rows, "n")
    for index, (label, overall) in enumerate(zip(rows["_label"].astype(str), rows["_overall"], strict=True)):
        y = top + index * _BAR_PITCH
        middle = y + _BAR_PITCH / 2
        start, end = sorted((zero, scale(shown[index])))
        color = OVERALL_COLOR if overall else BREAKDOWN_COLOR
        short = label if len(label) <= 30 else label[:29] + "…"
        parts.append(f"<text x='{_LABEL_WIDTH}' y='{middle + 4:.1f}' font-size='11' text-anchor='end'>"
                     f"<title>{escape(label)}</title>{escape(short)}</text>")
        parts.append(f"<rect x='{start:.1f}' y='{y + 3}' width='{end - start:.1f}' height='{_BAR_PITCH - 6}' "
                     f"fill='{color}'><title>{escape(label)}: {_value_text(values[index])}</title></rect>")
        if lower[index] > 0 or upper[index] > 0:
            x_low, x_high = scale(shown[index] - lower[index]), scale(shown[index] + upper[index])
            parts.append(f"<path d='M{x_low:.1f},{middle:.1f}H{x_high:.1f}M{x_low:.1f},{middle - 4:.1f}"
                         f"v8M{x_high:.1f},{middle - 4:.1f}v8' stroke='#333333' fill='none'/>")
        note = _value_text(values[index]) + ("" if pd.isna(counts.iloc[index]) else f"  n={int(counts.iloc[index])}")
        text_x = scale(max(shown[index], shown[index] + upper[index]) + 0.01 * span)
        parts.append(f"<text x='{text_x:.1f}' y='{middle + 4:.1f}' font-size='10'>{escape(note)}</text>")
    return parts, bottom + _AXIS_HEIGHT + _GAP


class _Scale:
    """Data values to x pixels of the plot area."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.width = low, (high - low) or 1.0

    def __call__(self, value: float) -> float:
        return _PLOT_LEFT + (value - self.low) / self.width * (_PLOT_RIGHT - _PLOT_LEFT)


def _ticks(left: float, right: float) -> list[float]:
    """About five round tick values covering [left, right]."""
    span = (right - left) or 1.0
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(left / step) * step
    count = math.floor((right - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(count)]


def _value_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def _document(parts: list[str], height: int) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{height}' "
            f"viewBox='0 0 {_WIDTH} {height}' {_FONT}>\n<rect width='100%' height='100%' fill='white'/>\n"
            + "\n".join(parts) + "\n</svg>\n")


def column_or_null(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-null when the table lacks it."""
    if name in rows.columns:
        return rows[name]
    return pd.Series([None] * len(rows), index=rows.index, dtype=object)


def float_array(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
