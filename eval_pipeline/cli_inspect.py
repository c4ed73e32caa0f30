"""``eval-pipeline export-inspect SUITE``: write a suite's run as Inspect AI ``.eval`` logs, one per model.

The tables are read where runs write them (``$EVAL_PIPELINE_OUTPUTS``, default the state folder's outputs); the logs
are written by Inspect's own writer (``interop/inspect_export.py``), so ``inspect view --log-dir DIR`` browses them.
Needs the optional ``inspect`` extra. Prints each log's path. Exit codes: 0 written, 2 bad input (an unknown suite or
model, nothing materialized yet, or Inspect not installed).
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Write a suite's run as Inspect AI logs (.eval), one per model, through
Inspect's own log writer, and print their paths: each item is a sample with
its input, target, the model's output or conversation (tool calls included),
one score per scorer and judge metric (value, answer, explanation), errors as
sample errors; the metrics table is the log's results. Browse them with
inspect view --log-dir DIR.

Needs the optional extra: pip install 'eval-pipeline[inspect]'. The tables
are read where runs write them ($EVAL_PIPELINE_OUTPUTS, default the state
folder's outputs). By default the logs go beside the tables:
<outputs>/<suite>/inspect/<suite>_<model>.eval."""
EPILOG = """\
examples:
  eval-pipeline export-inspect quickstart
  eval-pipeline export-inspect evals/judged.yaml --model reference-answers --output /tmp/logs

exit codes: 0 written, 2 bad input (an unknown suite or model, nothing
materialized yet for the suite, or Inspect AI not installed)"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``export-inspect`` on the top-level subparsers."""
    parser = commands.add_parser("export-inspect", help="write a suite's run as Inspect AI .eval logs (one per model)",
                                 description=DESCRIPTION, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", help="a suite file (evals/x.yaml) or a suite name")
    parser.add_argument("--model", action="append", dest="models", metavar="M",
                        help="only this model (repeat for several; default: every model with metrics)")
    parser.add_argument("--output", metavar="DIR", help="the folder to write to (default <outputs>/<suite>/inspect)")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from eval_pipeline import paths
    from eval_pipeline.cli_report import stored_suite_tables
    from eval_pipeline.data.inspect_logs import INSTALL_HINT
    from eval_pipeline.errors import EvalInputError
    from eval_pipeline.interop.inspect_export import logs_location, write_suite_logs

    suite, tables, _ = stored_suite_tables(args.suite, args.models, purpose="export")
    try:
        written = write_suite_logs(tables, args.output or logs_location(paths.outputs_location(), suite.suite))
    except ModuleNotFoundError as missing:
        if missing.name != "inspect_ai":
            raise
        raise EvalInputError(f"exporting Inspect logs needs Inspect AI: {INSTALL_HINT}") from missing
    for path in written.values():
        print(path, flush=True)
    return 0
