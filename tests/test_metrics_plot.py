"""The metrics plot written as SVG (no matplotlib): bars, intervals and labels checked against the table."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from eval_pipeline.tracking.metrics_plot import MAX_BARS_PER_PANEL, metrics_svg

SVG = "{http://www.w3.org/2000/svg}"


def table() -> pd.DataFrame:
    rows = [
        ("accuracy", None, None, 0.75, 0.55, 0.95, 4),
        ("accuracy", "category", "math", 1.0, 1.0, 1.0, 2),
        ("accuracy", "category", "geo & <history>", 0.5, 0.0, 1.0, 2),
        ("pass@2", None, None, 0.9, 0.8, 1.0, 4),
        ("judge_score", None, None, float("nan"), float("nan"), float("nan"), 0),
    ]
    return pd.DataFrame(rows, columns=["metric", "breakdown_key", "breakdown_value", "value", "ci_low", "ci_high",
                                       "n"])


def bars(svg: str) -> list[tuple[str, float, float]]:
    """(title, x, width) of each bar, in drawing order."""
    root = ET.fromstring(svg)
    return [(rect.find(f"{SVG}title").text, float(rect.get("x")), float(rect.get("width")))
            for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]


def texts(svg: str) -> list[str]:
    return ["".join(node.itertext()) for node in ET.fromstring(svg).iter(f"{SVG}text")]


def test_bars_follow_the_table() -> None:
    svg = metrics_svg(table())
    drawn = bars(svg)
    # overall first, then breakdown values sorted; the special characters escaped and read back intact
    assert [title.split(":")[0] for title, _, _ in drawn] == [
        "overall", "category=geo & <history>", "category=math", "overall", "overall"]
    accuracy = drawn[:3]
    zero = accuracy[0][1]  # every accuracy bar starts at 0 (values ≥ 0): widths are proportional to the values
    assert all(x == pytest.approx(zero) for _, x, _ in accuracy)
    widths = [width for _, _, width in accuracy]
    assert widths[1] / widths[0] == pytest.approx(0.5 / 0.75, rel=1e-2)
    assert widths[2] / widths[0] == pytest.approx(1.0 / 0.75, rel=1e-2)
    assert drawn[4][2] == 0.0 and drawn[4][0] == "overall: n/a"  # NaN: no bar, said so
    shown = texts(svg)
    assert "0.75  n=4" in shown and "1  n=2" in shown and "n/a  n=0" in shown
    assert [t for t in shown if t in ("accuracy", "pass@2", "judge_score")] == ["accuracy", "pass@2", "judge_score"]


def test_interval_whiskers_reach_the_bounds() -> None:
    svg = metrics_svg(table())
    (_, zero, width), *_ = bars(svg)
    pixels_per_unit = width / 0.75
    whisker = next(p.get("d") for p in ET.fromstring(svg).iter(f"{SVG}path"))
    low, high = (float(x) for x in re.match(r"M([\d.]+),[\d.]+H([\d.]+)", whisker).groups())
    assert (low - zero) / pixels_per_unit == pytest.approx(0.55, abs=0.01)
    assert (high - zero) / pixels_per_unit == pytest.approx(0.95, abs=0.01)


def test_many_bars_are_cut_with_a_note_and_empty_tables_say_so() -> None:
    many = pd.DataFrame({"metric": "f1", "breakdown_key": "id", "breakdown_value": [f"v{i:03}" for i in range(55)],
                         "value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 3})
    svg = metrics_svg(many)
    assert len(bars(svg)) == MAX_BARS_PER_PANEL
    assert f"f1 (first {MAX_BARS_PER_PANEL} bars; 15 more not shown)" in texts(svg)
    assert texts(metrics_svg(pd.DataFrame())) == ["no metrics to plot"]


def test_negative_values_draw_left_of_zero() -> None:
    frame = pd.DataFrame({"metric": ["delta", "delta"], "breakdown_key": [None, "k"], "breakdown_value": [None, "a"],
                          "value": [-0.2, 0.4], "ci_low": [float("nan")] * 2, "ci_high": [float("nan")] * 2,
                          "n": [5, 5]})
    (_, x_neg, w_neg), (_, x_pos, w_pos) = bars(metrics_svg(frame))
    assert x_neg + w_neg == pytest.approx(x_pos)  # the negative bar ends where the positive one starts: at 0
    assert w_pos / w_neg == pytest.approx(2.0, rel=1e-2)
