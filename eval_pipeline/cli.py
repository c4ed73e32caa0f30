"""``eval-pipeline``: run suites, list what exists, start the UI."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import signal
import sys
from datetime import datetime
from typing import Any

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.text_table import plain_table


def main(argv: list[str] | None = None) -> int:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eval-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="materialize a suite in-process and print its metrics")
    run.add_argument("spec", help="a suite file (evals/x.yaml) or a suite name")
    run.add_argument("--model", action="append", help="only this model (repeatable)")
    run.add_argument("--limit", type=int, help="only the first N dataset items")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.add_argument("--dry-run", action="store_true",
                     help="print the requests to make, those cached, and estimated tokens and cost; send nothing")
    run.add_argument("--verbose", action="store_true", help="show Dagster's event log and MLflow's messages")
    run.set_defaults(handler=_run)

    listing = commands.add_parser("list", help="show suites, their models and past runs")
    listing.add_argument("--runs", type=int, default=10, help="how many past runs to show")
    listing.set_defaults(handler=_list)

    ui = commands.add_parser("ui", help="start the Dagster UI (webserver + daemon) on the workspace")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui)

    from eval_pipeline.cli_backfill import add_parser as add_backfill
    from eval_pipeline.cli_batch import add_parser as add_batch_evaluation

    add_batch_evaluation(commands)
    add_backfill(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from eval_pipeline.execution import run_suite
    from eval_pipeline.instance import local_instance
    from eval_pipeline.suites import find_suite

    if args.limit is not None and args.limit < 1:
        raise EvalInputError("--limit must be at least 1")
    if not args.verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
        logging.getLogger("alembic").setLevel(logging.WARNING)
    suite = find_suite(args.spec)
    if args.dry_run:
        return _dry_run(suite, args)
    from eval_pipeline.inference.cache import check_cache_files

    check_cache_files([paths.generation_cache_location(), paths.judge_cache_location()])  # corrupt: exit 2
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
        print(json.dumps({"suite": suite.suite, "dry_run": True, "plans": [asdict(p) for p in plans]}))
        return 0
    print(f"{suite.suite}: dry run, nothing sent")
    print(plain_table([{
        "model": p.model, "backend": p.backend, "requests": str(p.requests), "cached": str(p.cached),
        "to send": str(p.to_send), "est. tokens in": str(p.est_tokens_in), "max tokens out": str(p.max_tokens_out),
        "est. cost (max)": "no price" if p.est_cost_usd is None else f"${p.est_cost_usd:.4f}"} for p in plans]))
    return 0


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
    from eval_pipeline.instance import dagster_home_path, existing_instance
    from eval_pipeline.suites import load_suites

    folder = paths.project_suites_dir()  # outside a project: say so, and create no state
    print(f"suites in {folder}:")
    for suite in load_suites(folder):
        models = ", ".join(f"{m.name} ({m.backend})" for m in suite.models)
        shards = f" | {suite.shards} shards" if suite.shards > 1 else ""
        print(f"  {suite.suite}: {suite.dataset.uri} | models: {models}{shards}")
    instance = existing_instance()  # None before the first run: nothing is created to list nothing
    records = instance.get_run_records(limit=args.runs) if instance is not None else []
    print(f"\npast runs ({dagster_home_path()}):" if records else "\nno past runs")
    for record in records:
        run = record.dagster_run
        started = datetime.fromtimestamp(record.start_time).strftime("%Y-%m-%d %H:%M:%S") if record.start_time else ""
        partition = run.tags.get("dagster/partition", "")
        print(f"  {run.run_id}  {run.job_name:<24} {partition:<20} {run.status.value:<10} {started}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from eval_pipeline.assets.partitions import register_declared_models
    from eval_pipeline.instance import local_instance
    from eval_pipeline.process_tree import run_supervised
    from eval_pipeline.suites import load_suites
    from eval_pipeline.tracking import default_tracking_uri

    instance = local_instance()
    for suite in load_suites():
        register_declared_models(instance, suite)

    print(f"Dagster UI: http://{args.host}:{args.port}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    print(f"MLflow UI:  mlflow ui --backend-store-uri {default_tracking_uri()} --host 127.0.0.1 --port 5000")
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", args.host, "-p", str(args.port)]
    sys.stdout.flush()
    # its own process group; a stop signal ends the webserver, the daemon and every code server (exit 128 + signal)
    return run_supervised(command, on_stop=_say_stopping)


def _say_stopping(signum: int) -> None:
    print(f"{signal.Signals(signum).name}: stopping the Dagster webserver, daemon and code servers", file=sys.stderr,
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
