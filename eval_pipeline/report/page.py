"""The report page: one self-contained HTML file (inline CSS and JS, the data as JSON in the page, no network)."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

DATA_ELEMENT_ID = "report-data"


@cache
def _static(name: str) -> str:
    return resources.files("eval_pipeline.report").joinpath("static", name).read_text(encoding="utf-8")


def embedded_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` can end it early)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(data: dict[str, Any]) -> str:
    """The whole page for ``data`` (``items.page_data``)."""
    title = html.escape(f"{data['suite']}: evaluation report")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{title}</title><style>{_static('report.css')}</style></head>\n"
            f"<body><div id=\"app\"><noscript>This report needs JavaScript.</noscript></div>\n"
            f"<script type=\"application/json\" id=\"{DATA_ELEMENT_ID}\">{embedded_json(data)}</script>\n"
            f"<script>{_static('report.js')}</script></body></html>\n")
