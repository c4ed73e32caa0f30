"""Writing a suite's report beside its tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eval_pipeline.report.tables import RunInfo, TableReader
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
    from upath import UPath

    target = path or report_location(suite, reader)
    UPath(target).write_text(f"<!doctype html><title>{suite.suite}</title>", encoding="utf-8")  # part 1 replaces
    return target
