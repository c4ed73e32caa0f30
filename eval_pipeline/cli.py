"""``eval-pipeline``: run suites, list what exists, start the UI (the help text: ``DESCRIPTION``, ``EXAMPLES``)."""

from __future__ import annotations

import argparse
import atexit
import errno
import gc
import json
import math
import os
import signal
import sys
from datetime import datetime
from typing import Any

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.quiet_output import configure_output, quiet_child_processes, quiet_dagster_warnings
from eval_pipeline.text_table import plain_table

atexit.register(gc.freeze)  # run last at exit: no collector pass over every object as the process ends (~0.5 s)


def main(argv: list[str] | None = None) -> int:
    gc.set_threshold(100_000, 50, 100)  # fewer collector passes while the libraries load: ~20% of their import time
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EvalInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`eval-pipeline list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a state file that cannot be written: say which, and the remedy, not a traceback
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS) or not exc.filename:
            raise
        print(f"error: {exc.filename}: {exc.strerror}: make it writable, or set {paths.HOME_ENV} to a writable "
              "state folder", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


DESCRIPTION = "eval-pipeline: run evaluation suites, list what exists, start the Dagster UI."
EXIT_CODES = {
    "": "exit codes: 0 done (every gate passed), 1 a model's run or a gate failed, 2 bad input (found before anything "
        "is sent), 130 interrupted, 143 stopped by SIGTERM",
    "run": "exit codes: 0 every model ran and every gate passed, 1 a model's run or a gate failed (the metrics are "
           "still printed), 2 bad input (a suite, dataset or responses file; found before anything is sent), "
           "130 interrupted",
    "list": "exit codes: 0 listed, 2 not a project folder (no evals/ here, no $EVAL_PIPELINE_SUITES) and no past "
            "runs to show",
    "ui": "exit codes: 2 not a project folder (no evals/ here, no $EVAL_PIPELINE_SUITES), 130 stopped by Ctrl-C, "
          "143 stopped by SIGTERM",
}
EXAMPLES = {
    "": """\
examples:
  eval-pipeline run evals/quickstart.yaml        run a suite, print its metrics
  eval-pipeline run quickstart --dry-run         what a run would send; sends nothing
  eval-pipeline list                             suites, their models, past runs
  eval-pipeline ui                               the Dagster UI on http://127.0.0.1:3000

Run a command with --help for its options and examples.""",
    "run": """\
examples:
  eval-pipeline run evals/quickstart.yaml
  eval-pipeline run quickstart --model smollm2-135m --limit 10 --json
  eval-pipeline run evals/judged.yaml --dry-run
  eval-pipeline run quickstart --verbose""",
    "list": """\
examples:
  eval-pipeline list
  eval-pipeline list --runs 50
  EVAL_PIPELINE_SUITES=~/project/evals eval-pipeline list""",
    "ui": """\
examples:
  eval-pipeline ui
  eval-pipeline ui --host 0.0.0.0 --port 3001
  eval-pipeline ui --verbose""",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eval-pipeline", description=_wrap(DESCRIPTION), epilog=_epilog(""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(commands, "run", "materialize a suite in-process and print its metrics",
                   "Materialize every stage of a suite (each model in turn, then the comparison with the baseline) "
                   "in this process, on the state folder's Dagster instance, and print each model's metrics.")
    run.add_argument("spec", help="a suite file (evals/x.yaml) or a suite name")
    run.add_argument("--model", action="append", help="only this model (repeatable)")
    run.add_argument("--limit", type=int, help="only the first N dataset items")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.add_argument("--dry-run", action="store_true",
                     help="print, per model, the requests to make, those cached and those to send, with estimated "
                          "tokens and cost, and the same for the judge's requests; send nothing")
    run.add_argument("--verbose", action="store_true",
                     help="also show Dagster's event log, database migrations and library warnings")
    run.set_defaults(handler=_run)

    listing = _command(commands, "list", "show suites, their models and past runs",
                       "Show the suites of this project (evals/*.yaml, or $EVAL_PIPELINE_SUITES) with their models, "
                       "and the latest runs recorded in the state folder.")
    listing.add_argument("--runs", type=int, default=10, help="how many past runs to show (default: 10)")
    listing.set_defaults(handler=_list)

    ui = _command(commands, "ui", "start the Dagster UI (webserver + daemon) on the workspace",
                  "Start the Dagster webserver and daemon (dagster dev) on this project's suites, and print how to "
                  "open the MLflow UI. Ctrl-C stops every process it started.")
    ui.add_argument("--host", default="127.0.0.1", help="the address to serve on (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000, help="the port to serve on (default: 3000)")
    ui.add_argument("--verbose", action="store_true",
                    help="also show the services' INFO log (sensor ticks) and Dagster's warnings")
    ui.set_defaults(handler=_ui)

    from eval_pipeline.cli_backfill import add_parser as add_backfill
    from eval_pipeline.cli_batch import add_parser as add_batch_evaluation

    add_batch_evaluation(commands)
    add_backfill(commands)
    from eval_pipeline.cli_report import add_parser as add_report
    add_report(commands)
    from eval_pipeline.cli_inspect import add_parser as add_export_inspect
    add_export_inspect(commands)
    return parser


def _command(commands: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand whose help shows its description, options, examples and exit codes."""
    return commands.add_parser(name, help=summary, description=_wrap(description), epilog=_epilog(name),
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def _epilog(command: str) -> str:
    return f"{EXAMPLES[command]}\n\n{_wrap(EXIT_CODES[command])}"


def _wrap(text: str) -> str:
    """A paragraph wrapped to the width argparse uses for the options (RawDescriptionHelpFormatter keeps lines)."""
    import textwrap

    return textwrap.fill(text, width=79)


def _version() -> str:
    """The installed package's version (the source tree's, when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eval-pipeline")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _run(args: argparse.Namespace) -> int:
    configure_output(args.verbose)  # before the libraries are imported: some read their settings then
    from eval_pipeline.suites import find_suite

    if not args.verbose:
        quiet_dagster_warnings()
    if args.limit is not None and args.limit < 1:
        raise EvalInputError("--limit must be at least 1")
    suite = find_suite(args.spec)
    if args.dry_run:
        return _dry_run(suite, args)
    from eval_pipeline.inference.cache import check_cache_files

    check_cache_files([paths.generation_cache_location(), paths.judge_cache_location()])  # corrupt: exit 2
    from eval_pipeline.tracking.worker import prestart

    # MLflow loads in a helper while Dagster loads here; the helper writes the item traces after the answer is
    # printed, on its own (``tracking/worker.py``)
    prestart(os.environ.get("MLFLOW_TRACKING_URI") or paths.default_mlflow_uri(), finish_in_background=True)
    from eval_pipeline.execution import run_suite
    from eval_pipeline.instance import local_instance

    result = run_suite(suite, local_instance(), models=args.model, limit=args.limit,
                       log_level="DEBUG" if args.verbose else "WARNING")
    if args.json:
        print(json.dumps(_result_json(result), indent=None, default=str))
    else:
        _print_result(result)
    return 0 if result.success else 1


def _dry_run(suite: Any, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from eval_pipeline.execution import plan_suite

    plans = plan_suite(suite, models=args.model, limit=args.limit)
    if args.json:
        print(json.dumps({"suite": suite.suite, "dry_run": True, "plans": [_plan_json(asdict(p), p) for p in plans]}))
        return 0
    print(f"{suite.suite}: dry run, nothing sent")
    print(plain_table([{
        "model": p.model, "backend": p.backend, "requests": str(p.requests), "cached": str(p.cached),
        "to send": str(p.to_send), "est. tokens in": str(p.est_tokens_in), "max tokens out": str(p.max_tokens_out),
        "est. cost (max)": _cost(p.est_cost_usd), "note": p.note} for p in plans]))
    if suite.judge is None:
        return 0
    judged = [p for p in plans if p.judge is not None]
    if not judged:
        print(f"\njudge: the judge's requests of a {suite.task} suite are not counted (only those of answers)")
        return 0
    first = judged[0].judge
    assert first is not None
    print(f"\njudge {first.judge}: {first.metrics} metrics, one request per answer × metric")
    print(plain_table([{
        "model": p.model, "requests": str(p.judge.requests), "cached": str(p.judge.cached),
        "to send": str(p.judge.to_send), "est. tokens in": str(p.judge.est_tokens_in),
        "max tokens out": str(p.judge.max_tokens_out), "est. cost (max)": _cost(p.judge.est_cost_usd),
        "note": p.judge.note()} for p in judged if p.judge is not None]))
    return 0


def _plan_json(fields: dict[str, Any], plan: Any) -> dict[str, Any]:
    """A plan as JSON: its fields, and the judge's note beside its counts."""
    if plan.judge is not None:
        fields["judge"]["note"] = plan.judge.note()
    return fields


def _cost(value: float | None) -> str:
    return "no price" if value is None else f"${value:.4f}"


def _result_json(result: Any) -> dict[str, Any]:
    metrics = []
    for row in result.metrics.to_dict("records"):
        breakdown = {} if _missing(row["breakdown_key"]) else {row["breakdown_key"]: row["breakdown_value"]}
        metrics.append({
            "model": row["model"], "metric": row["metric"], "value": _number(row["value"]),
            "stderr": _number(row["stderr"]), "ci_low": _number(row["ci_low"]), "ci_high": _number(row["ci_high"]),
            "ci_method": row.get("ci_method"), "n": int(row["n"]), "errors": int(row["errors"]),
            "breakdown": breakdown,
        })
    return {
        "suite": result.suite,
        "success": result.success,
        "metrics": metrics,
        "outputs": {m.model: {**m.outputs, "dagster_run_id": m.dagster_run_id, "mlflow_run_id": m.mlflow_run_id}
                    for m in result.models},
        "generation": {m.model: m.generation for m in result.models},
        "production": {m.model: {"stage": m.production_stage, "summary": m.production_summary, **m.generation}
                       for m in result.models},
        "judging": {m.model: m.judging for m in result.models if m.judging},
        "errors": {m.model: m.error for m in result.models if m.error}
        | ({"comparison": result.comparison.error} if result.comparison and result.comparison.error else {})
        | ({"comparison": result.comparison_skipped} if result.comparison_skipped else {}),
        "gates": [gate.as_dict() for gate in result.gates],
        "judge_warnings": {m.model: {f.metric: f.reason for f in _judge_flags(m)} for m in result.models},
        "report": getattr(result, "report", None),
        "comparison": [] if result.comparison is None else [
            {key: (_number(value) if isinstance(value, float) else value) for key, value in row.items()}
            for row in result.comparison.metrics.to_dict("records")],
    }


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _print_result(result: Any) -> None:
    for model in result.models:
        if not model.success and model.metrics.empty:
            print(f"{result.suite} / {model.model}: FAILED: {model.error}", file=sys.stderr)
            continue
        print(f"\n{result.suite} / {model.model}  (Dagster run {model.dagster_run_id})")
        print(_production_line(model))
        if model.judging:
            judged = model.judging
            print(f"judging: {judged.get('requests', 0)} requests, {judged.get('cached', 0)} from cache, "
                  f"{judged.get('sent', 0)} sent, {judged.get('errors', 0)} errors"
                  + ("  (nothing sent: all cached)" if judged.get("sent") == 0 else ""))
        print(plain_table([_metric_cells(row) for row in model.metrics.itertuples(index=False)]))
        for flag in _judge_flags(model):  # a warning, not a failure
            print(flag.line())
        print(f"outputs: {_suite_folder(model.outputs['metrics'])}")
        if model.mlflow_run_id:
            print(f"MLflow run: {model.mlflow_run_id}")
        for gate in model.gates:
            passed = gate.detail.get("summary") or gate.summary()  # a release gate's numbers, when it passed
            print(f"gate {passed}" if gate.passed else f"FAILED: gate {gate.summary()}")
        if not model.success:
            print(f"{result.suite} / {model.model}: FAILED: {model.error}", file=sys.stderr)
    if result.comparison is not None:
        _print_comparison(result.suite, result.comparison)
    elif result.comparison_skipped:
        print(f"{result.suite} / comparison: {result.comparison_skipped}", file=sys.stderr)
    if getattr(result, "report", None):
        print(f"report: {result.report}")


def _production_line(model: Any) -> str:
    """What the production stage did: the generation counts for a stage that generated answers, else the line its
    task kind logged (a rollout suite: how many rollouts, from the store, run, errors)."""
    counts = model.generation
    if "generated" in counts:
        return (f"generation: {counts.get('requests', 0)} requests, {counts.get('cached', 0)} from cache, "
                f"{counts['generated']} generated, {counts.get('errors', 0)} errors"
                + ("  (nothing generated: all cached)" if counts["generated"] == 0 else ""))
    return model.production_summary or f"{model.production_stage}: done"


def _suite_folder(metrics_path: str) -> str:
    """The suite's outputs folder of a metrics table path: a local folder or an ``s3://`` prefix."""
    from upath import UPath  # Path would fold s3:// into s3:/

    return str(UPath(metrics_path).parent.parent)


def _judge_flags(model: Any) -> list[Any]:
    """The model's degenerate-judge flags, from its judgments and scores tables (none without a judge)."""
    from upath import UPath  # the tables may be on S3 ($EVAL_PIPELINE_OUTPUTS)

    from eval_pipeline.judging.degenerate import degenerate_judges

    judgments, scores = model.outputs.get("judgments"), model.outputs.get("scores")
    if not judgments or not UPath(judgments).exists():
        return []
    import pandas as pd

    return degenerate_judges(pd.read_parquet(judgments),
                             pd.read_parquet(scores) if scores and UPath(scores).exists() else None)


def _print_comparison(suite: str, comparison: Any) -> None:
    if not comparison.success:
        print(f"{suite} / comparison: FAILED: {comparison.error}", file=sys.stderr)
        return
    print(f"\n{suite}: each model against the baseline, paired by item  (Dagster run "
          f"{comparison.dagster_run_id})")
    from eval_pipeline.assets.comparison import comparison_cells

    rows = comparison_cells(comparison.metrics).to_dict("records") if not comparison.metrics.empty else []
    print(plain_table(rows))
    if comparison.mlflow_run_id:
        print(f"MLflow run: {comparison.mlflow_run_id}")


def _metric_cells(row: Any) -> dict[str, str]:
    label = row.metric if _missing(row.breakdown_key) else f"  {row.metric} [{row.breakdown_key}={row.breakdown_value}]"
    def fmt(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.3f}"
    ci = "" if math.isnan(row.ci_low) else f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
    method = getattr(row, "ci_method", None)
    return {"metric": label, "value": fmt(row.value) or "n/a", "stderr": fmt(row.stderr), "95% CI": ci,
            "CI method": "" if _missing(method) else str(method), "n": str(row.n), "errors": str(row.errors)}


def _list(args: argparse.Namespace) -> int:
    """The project's suites and the state folder's past runs. Outside a project the runs are still listed when the
    state folder has some (with a note on stderr saying why no suite is); with neither, exit 2."""
    configure_output(verbose=False)
    from eval_pipeline.instance import dagster_home_path, existing_instance
    from eval_pipeline.suites import load_suites

    try:
        folder = paths.project_suites_dir()  # outside a project: say so, and create no state
    except EvalInputError as exc:
        folder, outside = None, exc
    instance = existing_instance()  # None before the first run: nothing is created to list nothing
    if folder is None:
        if instance is None:
            raise outside
        print(f"no suites: {outside}", file=sys.stderr)
    else:
        print(f"suites in {folder}:")
        for suite in load_suites(folder):
            models = ", ".join(f"{m.name} ({m.backend})" for m in suite.models)
            shards = f" | {suite.shards} shards" if suite.shards > 1 else ""
            print(f"  {suite.suite}: {suite.dataset.uri} | models: {models}{shards}")
    records = instance.get_run_records(limit=args.runs) if instance is not None else []
    print(f"\npast runs ({dagster_home_path()}):" if records else "\nno past runs")
    for record in records:
        run = record.dagster_run
        started = datetime.fromtimestamp(record.start_time).strftime("%Y-%m-%d %H:%M:%S") if record.start_time else ""
        partition = run.tags.get("dagster/partition", "")
        print(f"  {run.run_id}  {run.job_name:<24} {partition:<20} {run.status.value:<10} {started}")
    return 0


WORKSPACE_FILE = "workspace.yaml"


def _ui(args: argparse.Namespace) -> int:
    paths.project_suites_dir()  # outside a project: say so (exit 2) before any state is created
    configure_output(args.verbose)
    quiet_child_processes(args.verbose)
    from eval_pipeline.assets.partitions import register_declared_models
    from eval_pipeline.instance import local_instance
    from eval_pipeline.process_tree import run_supervised
    from eval_pipeline.suites import load_suites
    from eval_pipeline.tracking import default_tracking_uri

    if not args.verbose:
        quiet_dagster_warnings()
    instance = local_instance()
    for suite in load_suites():
        register_declared_models(instance, suite)

    print(f"Dagster UI: http://{args.host}:{args.port}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    print(f"MLflow UI:  mlflow ui --backend-store-uri {default_tracking_uri()} --host 127.0.0.1 --port 5000")
    command = [sys.executable, "-m", "dagster", "dev", "-w", _workspace_file(), "-h", args.host, "-p", str(args.port),
               "--log-level", "info" if args.verbose else "warning",
               "--log-format", "colored" if sys.stderr.isatty() else "json"]
    sys.stdout.flush()
    # its own process group; a stop signal ends the webserver, the daemon and every code server (exit 128 + signal)
    return run_supervised(command, on_stop=_say_stopping)


def _workspace_file() -> str:
    """This folder's ``workspace.yaml``; without one (the suites named by $EVAL_PIPELINE_SUITES), the package's code
    location written to the state folder, loaded from here."""
    if os.path.isfile(WORKSPACE_FILE):
        return WORKSPACE_FILE
    written = paths.home() / WORKSPACE_FILE
    written.write_text("load_from:\n  - python_module:\n      module_name: eval_pipeline.definitions\n"
                       f"      working_directory: {json.dumps(os.getcwd())}\n      location_name: eval_pipeline\n")
    return str(written)


def _say_stopping(signum: int) -> None:
    print(f"{signal.Signals(signum).name}: stopping the Dagster webserver, daemon and code servers", file=sys.stderr,
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
