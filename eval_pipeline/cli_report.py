"""``eval-pipeline report SUITE``: write the suite's HTML report (one self-contained file) from its stored tables.

The tables are read where runs write them (``$EVAL_PIPELINE_OUTPUTS``, default the state folder's outputs); each
model's Dagster and MLflow run ids and its gates' verdicts come from the Dagster instance's latest materialization
of ``[suite, metrics]`` for the model, when an instance exists. Prints the report's path. Exit codes: 0 written,
2 bad input (an unknown suite or model, or nothing materialized yet).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the module is imported to build the parser of every command: Dagster is loaded on use
    import dagster as dg

    from eval_pipeline.report import RunInfo, SuiteTables
    from eval_pipeline.suites.spec import Suite


DESCRIPTION = """\
Write a suite's HTML report and print its path: one self-contained file (no
server; it opens from disk) with the metrics and their intervals per model,
breakdown plots, gates, the comparison with the baseline, and every item with
its outputs, scores, judge explanations and errors (filters, search, failed
items, disagreements between two models, judge explanations, conversations).

The tables are read where runs write them ($EVAL_PIPELINE_OUTPUTS, default the
state folder's outputs); the Dagster and MLflow run ids and the gates' verdicts
come from the Dagster instance when there is one. By default the report is
written beside the tables: <outputs>/<suite>/report.html."""
EPILOG = """\
examples:
  eval-pipeline report quickstart
  eval-pipeline report evals/judged.yaml --model reference-answers --output /tmp/judged.html
  eval-pipeline report quickstart --open

exit codes: 0 written, 2 bad input (an unknown suite or model, or nothing
materialized yet for the suite)"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``report`` on the top-level subparsers."""
    parser = commands.add_parser("report", help="write a suite's HTML report (per-item drill-down) and print its path",
                                 description=DESCRIPTION, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", help="a suite file (evals/x.yaml) or a suite name")
    parser.add_argument("--model", action="append", dest="models", metavar="M",
                        help="only this model (repeat for several; default: every model with metrics)")
    parser.add_argument("--output", metavar="PATH", help="where to write it (default <outputs>/<suite>/report.html)")
    parser.add_argument("--open", action="store_true", help="open the report in a web browser")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from eval_pipeline.report.write import report_location, write_report

    suite, tables, reader = stored_suite_tables(args.suite, args.models, purpose="report")
    path = write_report(tables, args.output or report_location(suite, reader))
    print(path, flush=True)
    if args.open:
        import webbrowser
        from pathlib import Path

        webbrowser.open(Path(path).resolve().as_uri() if "://" not in path else path)
    return 0


def stored_suite_tables(spec: str, models: Sequence[str] | None, *, purpose: str) -> tuple[Suite, SuiteTables, Any]:
    """The suite named by ``spec``, the stored tables of its ``models`` (default: every model with metrics) with
    their runs from the Dagster instance, and the Parquet reader; an ``EvalInputError`` for a model the suite does
    not declare, or when no model has metrics yet (nothing to ``purpose``)."""
    from eval_pipeline import paths
    from eval_pipeline.errors import EvalInputError
    from eval_pipeline.report import read_suite_tables
    from eval_pipeline.resources.parquet_io import ParquetIOManager
    from eval_pipeline.suites import find_suite

    suite = find_suite(spec)
    declared = [model.name for model in suite.models]
    unknown = [name for name in models or [] if name not in declared]
    if unknown:
        raise EvalInputError(f"suite {suite.suite!r} has no model {', '.join(map(repr, unknown))} (its models: "
                             f"{', '.join(declared)})", field="--model")
    reader = ParquetIOManager(base_path=paths.outputs_location())
    tables = read_suite_tables(suite, reader, models=list(models) if models else None)
    if not tables.models:
        raise EvalInputError(f"nothing to {purpose} for suite {suite.suite!r}: no model has a metrics table under "
                             f"{paths.outputs_location()} (run it first: eval-pipeline run {spec})")
    runs = instance_run_infos(suite, [m.model for m in tables.models])
    for model in tables.models:
        model.run = runs.get(model.model, model.run)
    return suite, tables, reader


def instance_run_infos(suite: Suite, models: Sequence[str]) -> dict[str, RunInfo]:
    """Each model's runs and gate verdicts from the Dagster instance of the state folder; nothing when there is no
    instance yet (none is created)."""
    from eval_pipeline.instance import dagster_home_path, local_instance

    home = dagster_home_path()
    if not (home / "dagster.yaml").is_file() and not (home / "storage").is_dir():
        return {}
    instance = local_instance()
    return {model: info for model in models if (info := model_run_info(instance, suite, model)) is not None}


def model_run_info(instance: dg.DagsterInstance, suite: Suite, model: str) -> RunInfo | None:
    """The latest materialization of ``[suite, metrics]`` for ``model``: its run id, its ``mlflow_run_id``
    metadata, the gates its run's asset checks recorded and its degenerate-judge flags."""
    import dagster as dg

    from eval_pipeline.assets.metrics import gate_from_metadata
    from eval_pipeline.judging.degenerate import FLAG_PREFIX
    from eval_pipeline.report import RunInfo

    key = dg.AssetKey([suite.suite, "metrics"])
    result = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[model]),
                                             limit=1)
    if not result.records:
        return None
    record = result.records[0]
    materialization = record.asset_materialization
    metadata = dict(materialization.metadata) if materialization is not None else {}
    mlflow_run_id = getattr(metadata.get("mlflow_run_id"), "value", None) or None
    warnings = [{"metric": name[len(FLAG_PREFIX):], "reason": str(getattr(value, "value", value))}
                for name, value in metadata.items() if name.startswith(FLAG_PREFIX)]
    gates = []
    for entry in instance.all_logs(record.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event is not None else None
        gate = gate_from_metadata(dict(getattr(evaluation, "metadata", {}) or {}))
        if gate is not None and gate.model == model:
            gates.append(gate.as_dict())
    return RunInfo(dagster_run_id=record.run_id, mlflow_run_id=mlflow_run_id, gates=gates, judge_warnings=warnings)
