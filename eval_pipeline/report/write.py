"""Writing a suite's report beside its tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from eval_pipeline.report.tables import RunInfo, SuiteTables, TableReader, read_suite_tables
from eval_pipeline.suites.spec import Suite

REPORT_FILE = "report.html"


def report_location(suite: Suite, reader: TableReader) -> str:
    """``<outputs>/<suite>/report.html``: beside the suite's stage folders (a local path or an ``s3://`` URI)."""
    samples = reader.path_for([suite.suite, "samples"])
    return samples.rsplit("/", 1)[0] + "/" + REPORT_FILE


def write_suite_report(suite: Suite, reader: TableReader, *, models: Sequence[str] | None = None,
                       runs: Mapping[str, RunInfo] | None = None, path: str | None = None) -> str:
    """Read the suite's tables (``read_suite_tables``), render the page and write it to ``path`` (default
    ``report_location``); return the path written."""
    return write_report(read_suite_tables(suite, reader, models=models, runs=runs),
                        path or report_location(suite, reader))


def write_report(tables: SuiteTables, path: str, *, written: datetime | None = None) -> str:
    """Render ``tables`` and write the page to ``path`` (a local path or an ``s3://`` URI); return the path."""
    from upath import UPath

    from eval_pipeline.report.items import page_data
    from eval_pipeline.report.page import render_page

    when = (written or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    target = UPath(path)
    if target.protocol in ("", "file"):
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_page(page_data(tables, written=when)), encoding="utf-8")
    return path
