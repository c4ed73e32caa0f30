"""The suite report: one self-contained HTML page (no server; opens from disk) per suite run.

``write_suite_report`` reads a suite's tables through a ``TableReader`` (the Parquet IO manager satisfies it), renders
the page and writes it to ``<outputs>/<suite>/report.html``; ``RunInfo`` carries what the tables do not hold (the
Dagster and MLflow run ids, the gates' verdicts, the judge warnings).
"""

from eval_pipeline.report.tables import ModelTables, RunInfo, SuiteTables, TableReader, read_suite_tables
from eval_pipeline.report.write import report_location, write_suite_report

__all__ = ["ModelTables", "RunInfo", "SuiteTables", "TableReader", "read_suite_tables", "report_location",
           "write_suite_report"]
