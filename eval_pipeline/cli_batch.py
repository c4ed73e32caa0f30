"""``eval-pipeline batch-evaluation``: AgentCore's batch-evaluation API (self-hosted) on the command line.

Each subcommand calls one public method of ``eval_pipeline.traces.batch.BatchEvaluationClient`` with the
service's argument names and prints the response as a table, or with ``--json`` exactly (datetimes as ISO
strings). Exit codes: 0 done, 1 a job that ended FAILED / COMPLETED_WITH_ERRORS / STOPPED (or an evaluate call
with an error result), 2 bad input (``error: <file>:<line>: field '<field>': <message>``), 130 interrupted."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from eval_pipeline import paths
from eval_pipeline.errors import EvalInputError
from eval_pipeline.text_table import plain_table

START_FIELDS = ("batchEvaluationName", "evaluators", "dataSourceConfig", "clientToken", "evaluationMetadata",
                "description", "outputConfig")
"""The keyword arguments of ``start_batch_evaluation``: what a request file may hold."""
EVALUATOR_FIELDS = ("evaluatorName", "level", "evaluatorConfig", "description", "clientToken")
"""The keyword arguments of ``create_evaluator``: what an evaluator file may hold."""
ACTIVE = ("PENDING", "IN_PROGRESS", "STOPPING", "DELETING")
FAILED_ENDS = ("FAILED", "COMPLETED_WITH_ERRORS", "STOPPED")
POLL_SECONDS = 0.5
_DETACHED = "--detached-worker"


HELP = ("AgentCore's batch-evaluation API, self-hosted: each subcommand calls one method of BatchEvaluationClient "
        "with the service's argument names and prints the response as a table, or with --json exactly.")
EXIT_CODES = ("exit codes: 0 done, 1 a job that ended FAILED, COMPLETED_WITH_ERRORS or STOPPED (or an evaluate call "
              "with an error result), 2 bad input (file, line and field named), 130 interrupted")
EXAMPLES = {
    "": ["eval-pipeline batch-evaluation start --request travel.json --wait",
         "eval-pipeline batch-evaluation list",
         "eval-pipeline batch-evaluation get <batchEvaluationId> --json"],
    "start": ["eval-pipeline batch-evaluation start --request travel.json --wait",
              "eval-pipeline batch-evaluation start --request travel.yaml --name nightly --client-token run-42",
              "eval-pipeline batch-evaluation start --request travel.json --judge-backend bedrock "
              "--judge-model amazon.nova-pro-v1:0"],
    "get": ["eval-pipeline batch-evaluation get <batchEvaluationId>",
            "eval-pipeline batch-evaluation get <batchEvaluationId> --json"],
    "list": ["eval-pipeline batch-evaluation list",
             "eval-pipeline batch-evaluation list --max-results 10 --json"],
    "stop": ["eval-pipeline batch-evaluation stop <batchEvaluationId>"],
    "delete": ["eval-pipeline batch-evaluation delete <batchEvaluationId>"],
    "evaluate": ["eval-pipeline batch-evaluation evaluate --evaluator-id Builtin.TrajectoryInOrderMatch "
                 "--spans one_session.jsonl",
                 "eval-pipeline batch-evaluation evaluate --evaluator-id Builtin.Helpfulness --spans one_session.jsonl "
                 "--trace-id <traceId>"],
    "create-evaluator": ["eval-pipeline batch-evaluation create-evaluator --config evaluator.yaml",
                         "eval-pipeline batch-evaluation create-evaluator --config evaluator.json --json"],
    "list-evaluators": ["eval-pipeline batch-evaluation list-evaluators",
                        "eval-pipeline batch-evaluation list-evaluators --json"],
    "delete-evaluator": ["eval-pipeline batch-evaluation delete-evaluator <evaluatorId>"],
}
"""Each subcommand's example command lines, shown under ``--help``."""


def help_epilog(command: str) -> str:
    """A subcommand's ``--help`` tail: its examples and the exit codes."""
    import textwrap

    lines = "\n".join(f"  {line}" for line in EXAMPLES[command])
    return f"examples:\n{lines}\n\n{textwrap.fill(EXIT_CODES, width=79)}"


def add_parser(commands: Any) -> None:
    """Register ``batch-evaluation`` and its subcommands on the top-level subparsers."""
    import textwrap

    group = commands.add_parser("batch-evaluation",
                                help="AgentCore batch evaluation of recorded agent sessions, run here",
                                description=textwrap.fill(HELP, width=79), epilog=help_epilog(""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(dest="batch_command", required=True, metavar="SUBCOMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=text, description=text, epilog=help_epilog(name),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--json", action="store_true", help="print the API response as JSON")
        parser.set_defaults(handler=handler)
        return parser

    start = command("start", _start, "start a batch evaluation from a request file (start_batch_evaluation)")
    start.add_argument("--request", required=True,
                       help="the start_batch_evaluation arguments as a JSON or YAML file, in the service's names")
    start.add_argument("--name", help="batchEvaluationName (overrides the file's)")
    start.add_argument("--client-token", help="clientToken (overrides the file's)")
    start.add_argument("--wait", action="store_true",
                       help="run the job in the foreground with a progress line, then print its result")
    start.add_argument("--judge-backend", help="the judge's backend (default: local, the embedded model)")
    start.add_argument("--judge-model", help="the judge's model id (default: the embedded local model)")
    start.add_argument("--judge-base-url", help="the judge's base URL (openai-compatible servers)")
    start.add_argument("--no-mlflow", action="store_true", help="do not log the job to MLflow")
    start.add_argument(_DETACHED, action="store_true", help=argparse.SUPPRESS)

    get = command("get", _get, "show a batch evaluation: status, session counts, per-evaluator summaries")
    get.add_argument("id", help="batchEvaluationId")
    listing = command("list", _list, "list batch evaluations, newest first")
    listing.add_argument("--max-results", type=int, default=100, help="at most this many (default: 100)")
    listing.add_argument("--next-token", help="the nextToken of the previous page")
    stop = command("stop", _stop, "stop a running batch evaluation (its results so far are kept)")
    stop.add_argument("id", help="batchEvaluationId")
    delete = command("delete", _delete, "delete a batch evaluation and its outputs")
    delete.add_argument("id", help="batchEvaluationId")

    evaluate = command("evaluate", _evaluate, "run one evaluator on one session's span records, now")
    evaluate.add_argument("--evaluator-id", required=True,
                          help="a builtin (Builtin.Helpfulness) or custom evaluator's id")
    evaluate.add_argument("--spans", required=True, help="a JSONL file of one session's span and event records")
    target = evaluate.add_mutually_exclusive_group()
    target.add_argument("--trace-id", action="append", help="only this trace (repeatable)")
    target.add_argument("--span-id", action="append", help="only this span (repeatable)")
    evaluate.add_argument("--reference-inputs", help="evaluationReferenceInputs as a JSON or YAML file")

    create = command("create-evaluator", _create_evaluator, "create a custom evaluator from a config file")
    create.add_argument("--config", required=True,
                        help="the create_evaluator arguments (evaluatorName, level, evaluatorConfig, ...) as JSON/YAML")
    evaluators = command("list-evaluators", _list_evaluators, "list the builtin and custom evaluators")
    evaluators.add_argument("--max-results", type=int, default=100, help="at most this many (default: 100)")
    evaluators.add_argument("--next-token", help="the nextToken of the previous page")
    remove = command("delete-evaluator", _delete_evaluator, "delete a custom evaluator")
    remove.add_argument("id", help="evaluatorId")


# --- the client --------------------------------------------------------------------------------------------------


def _client(args: argparse.Namespace, *, judge: Any = None, log_to_mlflow: bool = True) -> Any:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
    from eval_pipeline.traces.batch import BatchEvaluationClient

    paths.home()  # the state folder from EVAL_PIPELINE_HOME, as the other commands use
    return BatchEvaluationClient(judge=judge, log_to_mlflow=log_to_mlflow)


def _judge(args: argparse.Namespace) -> Any:
    """The judge named by --judge-backend/--judge-model (None: the client's default, the embedded local model)."""
    if not (args.judge_backend or args.judge_model or args.judge_base_url):
        return None
    from pydantic import ValidationError

    from eval_pipeline.inference.model_spec import ModelSpec

    backend = args.judge_backend or "local"
    model = args.judge_model
    if model is None and backend == "local":
        from eval_pipeline.suites.spec import JudgeSpec

        model = JudgeSpec().model.model
    try:
        return ModelSpec(name="judge", backend=backend, model=model, base_url=args.judge_base_url)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise EvalInputError(error["msg"], field=f"--judge-{error['loc'][0] if error['loc'] else 'model'}") from None


# --- start --------------------------------------------------------------------------------------------------------


def _start(args: argparse.Namespace) -> int:
    request, document = _load_document(args.request)
    unknown = [key for key in request if key not in START_FIELDS]
    if unknown:
        raise EvalInputError(f"not a start_batch_evaluation argument (those are {', '.join(START_FIELDS)})",
                             file=args.request, line=document.line_of([unknown[0]]), field=unknown[0])
    overrides = {"batchEvaluationName": args.name, "clientToken": args.client_token}
    request.update({key: value for key, value in overrides.items() if value is not None})
    for needed in ("batchEvaluationName", "evaluators", "dataSourceConfig"):
        if needed not in request:
            raise EvalInputError("missing" + (" (or give --name)" if needed == "batchEvaluationName" else ""),
                                 file=args.request, field=needed)
    judge = _judge(args)
    if not args.wait and not args.detached_worker:
        return _start_detached(args)
    client = _client(args, judge=judge, log_to_mlflow=not args.no_mlflow)
    option = {"batchEvaluationName": "--name", "clientToken": "--client-token"}
    with _located(args.request, document, {option[k]: k for k, v in overrides.items() if v is not None}):
        response = client.start_batch_evaluation(**request)
    job_id = response["batchEvaluationId"]
    if args.detached_worker:
        return _detached_worker(client, response)
    try:
        status = _wait(client, job_id, progress=_progress_for(job_id))
    except KeyboardInterrupt:  # stop the job (its results so far are kept), then exit 130
        with contextlib.suppress(EvalInputError):  # it has ended already
            client.stop_batch_evaluation(batchEvaluationId=job_id)
            print(f"stopping batch evaluation {job_id}", file=sys.stderr)
        raise
    if status is None:
        print(f"batch evaluation {job_id} was deleted while it ran", file=sys.stderr)
        return 1
    return _show_job(client.get_batch_evaluation(batchEvaluationId=job_id), args.json)


def _start_detached(args: argparse.Namespace) -> int:
    """Without --wait the job runs in a detached worker process (this command returns at once): the worker
    starts the job, hands its start response back on stdout, and runs it with its output in the job's log."""
    command = [sys.executable, "-m", "eval_pipeline.cli", "batch-evaluation", "start", "--request", args.request,
               _DETACHED]
    for option, value in (("--name", args.name), ("--client-token", args.client_token),
                          ("--judge-backend", args.judge_backend), ("--judge-model", args.judge_model),
                          ("--judge-base-url", args.judge_base_url)):
        if value is not None:
            command += [option, value]
    if args.no_mlflow:
        command.append("--no-mlflow")
    worker = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    assert worker.stdout is not None and worker.stderr is not None
    line = worker.stdout.readline()
    if not line:  # the request was refused (or the worker broke): its message and exit code are ours
        message = worker.stderr.read()
        code = worker.wait()
        sys.stderr.write(message)
        return code or 1
    worker.stdout.close()
    worker.stderr.close()
    response = json.loads(line)
    if args.json:
        print(_json(response))
    else:
        print(f"batch evaluation {response['batchEvaluationId']}: {response['status']}")
        print(f"follow it with: eval-pipeline batch-evaluation get {response['batchEvaluationId']}")
    return 0


def _detached_worker(client: Any, response: Mapping[str, Any]) -> int:
    """In the worker: hand the start response to the parent, send further output to the job's log, run the job."""
    job_id = response["batchEvaluationId"]
    log_path = paths.home() / "batch_evaluations" / "logs" / f"{job_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stderr.flush()
    os.dup2(log, 2)
    sys.stdout.write(_json(response) + "\n")
    sys.stdout.flush()
    os.dup2(log, 1)
    status = _wait(client, job_id, progress=None)
    print(f"batch evaluation {job_id}: {status or 'deleted'}")
    return 0


def _wait(client: Any, job_id: str, *, progress: Callable[[Mapping[str, Any]], None] | None,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Wait for the job to end (its worker in this process, or in another one): its end status, None if deleted."""
    while True:
        began = clock()
        status = client.wait_batch_evaluation(batchEvaluationId=job_id, timeout=POLL_SECONDS)
        if status is None:
            return None
        if progress is not None:
            with contextlib.suppress(EvalInputError):  # deleted in between
                progress(client.get_batch_evaluation(batchEvaluationId=job_id))
        if status not in ACTIVE:
            return status
        left = POLL_SECONDS - (clock() - began)
        if left > 0:  # its worker runs elsewhere: wait_batch_evaluation returned at once
            sleep(left)


class SessionProgress:
    """The progress line of a job that runs in the foreground: sessions done / total, rate and time left, on
    stderr; a tqdm bar (``eval_pipeline.progress``) in a terminal, a plain line per change elsewhere."""

    def __init__(self, job_id: str, *, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 bar: bool | None = None) -> None:
        self.job_id, self.clock = job_id, clock
        self.stream = stream if stream is not None else sys.stderr
        self.started = clock()
        self.last: tuple[str, int, int] | None = None
        use_bar = bar if bar is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: Any = None
        if use_bar:
            from eval_pipeline.progress import Progress

            self.bar = Progress(f"batch evaluation {job_id}", unit="session", bar=True, stream=self.stream)

    def __call__(self, job: Mapping[str, Any]) -> None:
        counts = job.get("evaluationResults") or {}
        total = int(counts.get("totalNumberOfSessions") or 0)
        done = int(counts.get("numberOfSessionsCompleted") or 0) + int(counts.get("numberOfSessionsFailed") or 0)
        state = (str(job.get("status")), done, total)
        if state == self.last:
            return
        self.last = state
        if self.bar is not None and total:
            self.bar(done, total)
            return
        print(progress_line(self.job_id, state[0], done, total, self.clock() - self.started), file=self.stream)


def progress_line(job_id: str, status: str, done: int, total: int, elapsed: float) -> str:
    """``<id>: IN_PROGRESS, sessions 4/8, 2.00 sessions/s, about 2 s left`` (no counts before ingestion)."""
    if not total:
        return f"{job_id}: {status}"
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{job_id}: {status}, sessions {done}/{total}"
    if rate > 0:
        text += f", {rate:.2f} sessions/s"
        text += f", about {math.ceil((total - done) / rate)} s left" if done < total else f", done in {elapsed:.1f} s"
    return text


def _progress_for(job_id: str) -> SessionProgress:
    return SessionProgress(job_id)


# --- the other calls -------------------------------------------------------------------------------------------


def _get(args: argparse.Namespace) -> int:
    return _show_job(_client(args).get_batch_evaluation(batchEvaluationId=args.id), args.json)


def _list(args: argparse.Namespace) -> int:
    response = _client(args).list_batch_evaluations(maxResults=args.max_results, nextToken=args.next_token)
    if args.json:
        print(_json(response))
        return 0
    rows = []
    for job in response["batchEvaluations"]:
        counts = job.get("evaluationResults") or {}
        rows.append({"id": job["batchEvaluationId"], "name": job["batchEvaluationName"], "status": job["status"],
                     "created": _when(job.get("createdAt")), "sessions": _sessions_cell(counts),
                     "evaluators": str(len(job.get("evaluators") or []))})
    print(plain_table(rows) if rows else "no batch evaluations")
    if response.get("nextToken"):
        print(f"more: --next-token {response['nextToken']}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    response = _client(args).stop_batch_evaluation(batchEvaluationId=args.id)
    print(_json(response) if args.json else f"batch evaluation {response['batchEvaluationId']}: {response['status']}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    response = _client(args).delete_batch_evaluation(batchEvaluationId=args.id)
    print(_json(response) if args.json else f"batch evaluation {response['batchEvaluationId']}: {response['status']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    records = _span_records(args.spans)
    call: dict[str, Any] = {"evaluatorId": args.evaluator_id, "evaluationInput": {"sessionSpans": records}}
    if args.trace_id or args.span_id:
        call["evaluationTarget"] = {"traceIds": args.trace_id} if args.trace_id else {"spanIds": args.span_id}
    document = None
    if args.reference_inputs:
        references, document = _load_document(args.reference_inputs, mapping=False)
        call["evaluationReferenceInputs"] = references
    client = _client(args)
    options = {"--trace-id": "evaluationTarget.traceIds", "--span-id": "evaluationTarget.spanIds",
               "--evaluator-id": "evaluatorId", "--spans": "evaluationInput.sessionSpans"}
    if document is not None:
        with _located(args.reference_inputs, document, options, prefix="evaluationReferenceInputs"):
            response = client.evaluate(**call)
    else:
        with _located(None, None, options):
            response = client.evaluate(**call)
    results = response["evaluationResults"]
    if args.json:
        print(_json(response))
    else:
        print(plain_table([{"evaluator": r["evaluatorId"], "session": r["context"]["spanContext"]["sessionId"],
                       "trace": r["context"]["spanContext"].get("traceId", ""),
                       "span": r["context"]["spanContext"].get("spanId", ""), "value": _score(r.get("value")),
                       "label": str(r.get("label", "")), "error": str(r.get("errorCode", ""))} for r in results])
              if results else "no results")
    errors = [r for r in results if r.get("errorCode") or r.get("errorMessage")]
    for result in errors:
        print(f"error: {result.get('errorCode', 'error')}: {result.get('errorMessage', '')}", file=sys.stderr)
    return 1 if errors else 0


def _create_evaluator(args: argparse.Namespace) -> int:
    config, document = _load_document(args.config)
    unknown = [key for key in config if key not in EVALUATOR_FIELDS]
    if unknown:
        raise EvalInputError(f"not a create_evaluator argument (those are {', '.join(EVALUATOR_FIELDS)})",
                             file=args.config, line=document.line_of([unknown[0]]), field=unknown[0])
    for needed in ("evaluatorName", "level", "evaluatorConfig"):
        if needed not in config:
            raise EvalInputError("missing", file=args.config, field=needed)
    client = _client(args)
    with _located(args.config, document, {}):
        response = client.create_evaluator(**config)
    print(_json(response) if args.json else f"evaluator {response['evaluatorId']}: {response['status']}\n"
          f"arn: {response['evaluatorArn']}")
    return 0


def _list_evaluators(args: argparse.Namespace) -> int:
    response = _client(args).list_evaluators(maxResults=args.max_results, nextToken=args.next_token)
    if args.json:
        print(_json(response))
        return 0
    print(plain_table([{"id": e["evaluatorId"], "type": e.get("evaluatorType", ""), "level": e.get("level", ""),
                   "status": e.get("status", ""), "name": e.get("evaluatorName", "")}
                  for e in response["evaluators"]]))
    if response.get("nextToken"):
        print(f"more: --next-token {response['nextToken']}")
    return 0


def _delete_evaluator(args: argparse.Namespace) -> int:
    response = _client(args).delete_evaluator(evaluatorId=args.id)
    print(_json(response) if args.json else f"evaluator {response['evaluatorId']}: {response['status']}")
    return 0


# --- showing a job ------------------------------------------------------------------------------------------------


def _show_job(job: Mapping[str, Any], as_json: bool) -> int:
    """Print the job (table or JSON); the exit code of its status: 1 for an end other than COMPLETED."""
    status = job["status"]
    if as_json:
        print(_json(job))
    else:
        print(f"batch evaluation {job['batchEvaluationId']} ({job['batchEvaluationName']}): {status}")
        print(f"created {_when(job.get('createdAt'))}, updated {_when(job.get('updatedAt'))}")
        counts = job.get("evaluationResults")
        if counts:
            print(f"sessions: {counts.get('totalNumberOfSessions', 0)} total, "
                  f"{counts.get('numberOfSessionsCompleted', 0)} completed, "
                  f"{counts.get('numberOfSessionsFailed', 0)} failed, "
                  f"{counts.get('numberOfSessionsInProgress', 0)} in progress, "
                  f"{counts.get('numberOfSessionsIgnored', 0)} ignored")
            summaries = counts.get("evaluatorSummaries") or []
            if summaries:
                print(plain_table([{"evaluator": s["evaluatorId"],
                               "averageScore": _score((s.get("statistics") or {}).get("averageScore")),
                               "totalEvaluated": str(s.get("totalEvaluated", 0)),
                               "totalFailed": str(s.get("totalFailed", 0))} for s in summaries]))
        outputs = paths.home() / "batch_evaluations" / str(job["batchEvaluationId"])
        if status not in ACTIVE and outputs.is_dir():
            print(f"outputs: {outputs}")
    for detail in job.get("errorDetails") or []:
        print(f"error details: {detail}", file=sys.stderr)
    if status in FAILED_ENDS:
        print(f"batch evaluation {job['batchEvaluationId']}: {status}", file=sys.stderr)
        return 1
    return 0


def _sessions_cell(counts: Mapping[str, Any]) -> str:
    if not counts:
        return ""
    done = int(counts.get("numberOfSessionsCompleted") or 0)
    failed = int(counts.get("numberOfSessionsFailed") or 0)
    return f"{done + failed}/{counts.get('totalNumberOfSessions', 0)}" + (f" ({failed} failed)" if failed else "")


def _score(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.4f}"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return "" if value is None else str(value)


def _json(value: Any) -> str:
    return json.dumps(value, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# --- input files ------------------------------------------------------------------------------------------------


def _load_document(name: str, *, mapping: bool = True) -> tuple[Any, Any]:
    """A JSON or YAML file: its data and the line of each key (``YamlDocument``); errors name file and line."""
    from eval_pipeline.suites.yaml_source import YamlDocument, read_yaml

    path = Path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalInputError(f"cannot read it: {exc.strerror or exc}", file=name) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=name,
                                 line=exc.lineno) from None
        try:
            document = read_yaml(text, name)  # the same data, with the line of each key
        except EvalInputError:
            document = YamlDocument(data)
        document = YamlDocument(data, document.lines)
    else:
        document = read_yaml(text, name)
    wanted = dict if mapping else list
    if not isinstance(document.data, wanted):
        raise EvalInputError(f"must hold a {'mapping' if mapping else 'list'}", file=name, line=1)
    return (dict(document.data) if mapping else list(document.data)), document


def _span_records(name: str) -> list[dict[str, Any]]:
    """One session's span and event records, one JSON object a line."""
    try:
        lines = Path(name).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalInputError(f"cannot read it: {exc.strerror or exc}", file=name) from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"not a JSON record: {exc.msg} (column {exc.colno})", file=name, line=number,
                                 field="sessionSpans") from None
        if not isinstance(record, dict):
            raise EvalInputError("not a JSON object", file=name, line=number, field="sessionSpans")
        records.append(record)
    return records


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_path(field: str) -> list[str | int]:
    """``evaluators[10].evaluatorId`` as ``["evaluators", 10, "evaluatorId"]``."""
    return [int(index) if index else key for key, index in _PART.findall(field)]


@contextlib.contextmanager
def _located(file: str | None, document: Any, options: Mapping[str, str], *, prefix: str = "") -> Iterator[None]:
    """The client's errors about the file's fields re-raised naming the file and the field's line (an error about
    a field given by an option names the option); errors that name a file of their own are left as they are."""
    try:
        yield
    except EvalInputError as exc:
        if exc.file is not None or exc.field is None:
            raise
        for option, field in options.items():
            if exc.field == field or exc.field.startswith(f"{field}.") or exc.field.startswith(f"{field}["):
                raise type(exc)(exc.reason, field=option) from None
        if file is None:
            raise
        parts = field_path(exc.field)
        if prefix:
            head = field_path(prefix)
            if parts[:len(head)] != head:
                raise
            parts = parts[len(head):]
        raise type(exc)(exc.reason, file=file, line=document.line_of(parts) if parts else None,
                        field=exc.field) from None
