"""Other harnesses' formats, written from a suite's tables (Inspect AI logs: ``inspect_export``).

Readers of other formats into our tables live in ``data/`` (``data/inspect_logs.py``); this package reads a run's
tables (``report.tables``) and writes them in another harness's format.
"""
