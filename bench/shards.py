"""A suite split into 1, 2 and 4 shards, backfilled by ``dagster-daemon`` with the multiprocess executor: wall time
against one shard, as ratios, and the overhead per shard.

Usage: python bench/shards.py [--items 20000] [--shards 1 2 4] [--json]

Writes a ``--items`` gen_qa dataset and one ``precomputed`` model's answers (every fifth one wrong), then for each
shard count, on a fresh instance (a new ``DAGSTER_HOME`` and state folder, SQLite; the run queue sized so that every
shard of the model can run at once), starts ``dagster-daemon run`` over ``workspace.yaml`` with
``EVAL_PIPELINE_EXECUTOR=multiprocess``, submits ``eval-pipeline backfill --suite … --wait`` and, once it is done,
reads the backfill's runs and steps from the instance's event log. Per shard count:

- ``wall s``: from the backfill's submission (its timestamp) to the end of its last run, or of the model's
  aggregation (a sharded suite's metrics are run by the suite's automation sensor once every shard is in; it
  ticks every 30 s, which is part of the figure);
- ``x 1 shard``: that wall time over the one-shard wall time (below 1: faster);
- ``steps s``: the time inside the steps (step start to step success, summed over every run): the stage bodies with
  their Parquet reads and writes;
- ``runs s``: the runs' durations summed (each run's process start, its step processes, the steps);
- ``overhead/shard run s``: the mean, over the backfill's model (× shard) runs, of run time not spent in steps (run
  worker start, one process per step, event log writes);
- ``added run s/shard``: (runs s − runs s of one shard) / (shards − 1): what each added shard costs in run time.

The exact-match metric of the aggregated shards is checked against the count of right answers in the file (the
numbers of a sharded suite are those of one shard). Nothing is timed inside a test; these are figures to read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SUITE = "shardbench"
MODEL = "precomputed-model"
WRONG_EVERY = 5


def write_data(folder: Path, items: int) -> tuple[Path, Path, int]:
    """The dataset, the model's answers, and how many of them are right."""
    folder.mkdir(parents=True, exist_ok=True)
    data, answers = folder / "qa.jsonl", folder / "answers.jsonl"
    right = 0
    with data.open("w") as items_out, answers.open("w") as answers_out:
        for i in range(items):
            sample_id, reference = f"item-{i:06d}", str(i * 7 % 1000)
            items_out.write(json.dumps({"id": sample_id, "prompt": f"What is item {i}?", "referenceResponse":
                                        reference, "category": f"c{i % 4}"}) + "\n")
            wrong = i % WRONG_EVERY == 0
            right += not wrong
            answers_out.write(json.dumps({"sample_id": sample_id, "response": "no" if wrong else reference}) + "\n")
    return data, answers, right


def write_suite(folder: Path, data: Path, answers: Path, shards: int) -> Path:
    suites = folder / "suites"
    suites.mkdir(parents=True)
    (suites / f"{SUITE}.yaml").write_text(
        f"suite: {SUITE}\n"
        f"dataset: {{uri: {data}, format: gen_qa}}\n"
        f"models:\n  - {{name: {MODEL}, backend: precomputed, responses: {answers}}}\n"
        "scorers: [exact_match]\n"
        f"shards: {shards}\n"
        "schedule: null\n")
    return suites


def environment(folder: Path, suites: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAGSTER_", "EVAL_PIPELINE_", "MLFLOW_")) and k.lower() not in ("http_proxy",
                                                                                              "https_proxy")}
    env.update(DAGSTER_HOME=str(folder / "dagster"), EVAL_PIPELINE_HOME=str(folder / "state"),
               EVAL_PIPELINE_SUITES=str(suites), EVAL_PIPELINE_EXECUTOR="multiprocess",
               MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
    return env


@contextlib.contextmanager
def daemon(env: dict[str, str], log: Path) -> Any:
    with log.open("wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
                                    str(REPO / "workspace.yaml")], cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(instance: Any, backfill_id: str) -> dict[str, Any]:
    """Wall, run and step seconds of one finished backfill, from the instance."""
    import dagster as dg

    backfill = instance.get_backfill(backfill_id)
    records = list(instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})))
    # a sharded suite's metrics: aggregated by its automation sensor after the backfill's shards
    aggregation = {"dagster/sensor_name": f"{SUITE}_aggregate_shards"}
    records += instance.get_run_records(filters=dg.RunsFilter(tags=aggregation))
    run_s, step_s, shard_overheads = 0.0, 0.0, []
    for record in records:
        run = record.dagster_run
        duration = record.end_time - record.start_time
        started: dict[str, float] = {}
        in_steps = 0.0
        for entry in instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_START,
                                                            dg.DagsterEventType.STEP_SUCCESS}):
            if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            elif entry.step_key in started:
                in_steps += entry.timestamp - started[entry.step_key]
        run_s, step_s = run_s + duration, step_s + in_steps
        if run.tags.get("dagster/backfill") == backfill_id and run.tags.get("dagster/partition"):
            shard_overheads.append(duration - in_steps)  # a model (× shard) run of the backfill
    wall = max(record.end_time for record in records) - backfill.backfill_timestamp
    return {"wall_s": wall, "runs": len(records), "run_s": run_s, "step_s": step_s,
            "overhead_per_shard_run_s": sum(shard_overheads) / len(shard_overheads) if shard_overheads else None,
            "status": backfill.status.value}


def run_shards(root: Path, data: Path, answers: Path, shards: int) -> dict[str, Any]:
    """One fresh instance, daemon and backfill; its figures and the aggregated exact-match value."""
    import dagster as dg
    import pandas as pd

    from eval_pipeline.instance import RunQueue, render_config

    folder = root / f"shards-{shards}"
    suites = write_suite(folder, data, answers, shards)
    (folder / "dagster").mkdir(parents=True)
    queue = RunQueue(max_concurrent_runs=max(4, shards), runs_per_backend=max(4, shards),
                     runs_per_backfill=max(4, shards), pool_limit=max(4, shards))
    (folder / "dagster" / "dagster.yaml").write_text(render_config(None, queue))
    dg.DagsterInstance.from_config(str(folder / "dagster")).dispose()  # the schema, before two processes race
    env = environment(folder, suites)
    with daemon(env, folder / "daemon.log"):
        done = subprocess.run([str(Path(sys.executable).with_name("eval-pipeline")), "backfill", "--suite", SUITE,
                               "--wait"], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{shards} shards: the backfill failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    backfill_id = next(line.split()[1].rstrip(":") for line in done.stdout.splitlines()
                       if line.startswith("backfill ") and ": suite " in line)
    instance = dg.DagsterInstance.from_config(str(folder / "dagster"))
    try:
        figures = measure(instance, backfill_id)
    finally:
        instance.dispose()
    metrics = pd.read_parquet(folder / "state" / "outputs" / SUITE / "metrics" / f"{MODEL}.parquet")
    overall = metrics[metrics["breakdown_key"].isna()].set_index("metric")
    figures.update(shards=shards, exact_match=float(overall.loc["exact_match", "value"]),
                   n=int(overall.loc["exact_match", "n"]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--json", action="store_true", help="also print each row as a JSON line")
    args = parser.parse_args()
    if args.shards[0] != 1:
        raise SystemExit("the first shard count must be 1 (the baseline of the ratios)")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shard-bench-") as tmp:
        root = Path(tmp)
        data, answers, right = write_data(root / "data", args.items)
        print(f"{args.items} items, one precomputed model, {os.cpu_count()} CPUs; multiprocess executor", flush=True)
        for shards in args.shards:
            started = time.monotonic()
            row = run_shards(root, data, answers, shards)
            row["bench_s"] = time.monotonic() - started
            if row["n"] != args.items or abs(row["exact_match"] - right / args.items) > 1e-12:
                raise SystemExit(f"{shards} shards: exact_match {row['exact_match']} over n={row['n']}, expected "
                                 f"{right / args.items} over {args.items}")
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    base = rows[0]
    print(f"{'shards':>6}  {'wall s':>7}  {'x 1 shard':>9}  {'runs':>4}  {'steps s':>8}  {'runs s':>7}  "
          f"{'overhead/shard run s':>20}  {'added run s/shard':>17}")
    for row in rows:
        added = (row["run_s"] - base["run_s"]) / (row["shards"] - 1) if row["shards"] > 1 else None
        overhead = row["overhead_per_shard_run_s"]
        print(f"{row['shards']:>6}  {row['wall_s']:>7.1f}  {row['wall_s'] / base['wall_s']:>9.2f}  {row['runs']:>4}  "
              f"{row['step_s']:>8.1f}  {row['run_s']:>7.1f}  "
              f"{'' if overhead is None else f'{overhead:.1f}':>20}  {'' if added is None else f'{added:.1f}':>17}")
    print(f"exact_match = {base['exact_match']:.4f} over n = {base['n']} for every shard count "
          f"(expected {right}/{args.items})")


if __name__ == "__main__":
    main()
