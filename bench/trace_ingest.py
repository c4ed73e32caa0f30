"""Span ingestion and programmatic evaluation: spans per second and peak memory, against a plain ``json.loads`` loop.

Usage: python bench/trace_ingest.py [--spans 100000] [--sessions 2000] [--json]

Writes ``--spans`` span records of ``--sessions`` Strands travel-agent sessions (several turns each, tool calls,
one event record with the message bodies per agent, model and tool span: the shape of examples/data/traces) to a
temporary JSONL file, then measures three phases, each in a fresh Python process so that its peak memory is its own:

- baseline: ``json.loads`` of every line of the file, nothing kept;
- ingest: ``traces.files.read_files_source`` (parse, join event records to spans, the ``traces`` table);
- evaluate: ingest + ``sessions_from_traces`` + ``run_evaluations`` with Builtin.TrajectoryExactOrderMatch,
  InOrderMatch and AnyOrderMatch against ground truth for every session.

Each row gives spans per second, the time ratio against the baseline (how many times slower), the process's peak
RSS (``ru_maxrss``) with its ratio against the baseline's, and the growth of RSS over what the imports alone took
(the working memory of the phase itself), and the ``traces`` table's own size (its columns' deep memory) with the
working memory as a multiple of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHASES = ("baseline", "ingest", "evaluate")
EVALUATORS = ("Builtin.TrajectoryExactOrderMatch", "Builtin.TrajectoryInOrderMatch",
              "Builtin.TrajectoryAnyOrderMatch")
TOOL_RESULTS = {"search_flights": '[{"flight": "AS 12", "departs": "08:05", "price_usd": 289}]',
                "book_flight": '{"confirmation": "QX7P2M", "status": "confirmed"}',
                "get_weather": '{"forecast": "sunny", "high_c": 18}',
                "cancel_booking": '{"status": "cancelled", "refund_usd": 289}'}


def _pick(*parts: object) -> int:
    return int(hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=4).hexdigest(), 16)


def session_plan(index: int, spans: int) -> tuple[list[Any], list[str]]:
    """(turn scripts, expected tool names) of synthetic session ``index`` with exactly ``spans`` span records.

    A turn with k tool-calling model cycles and t tool calls has 3 + 2k + t spans; turns get about 12 each."""
    from examples.data.traces.make_examples import ToolUse, TurnScript

    if spans < 6 and spans != 3:
        raise SystemExit(f"a session needs 3 or at least 6 spans, not {spans}: give more --spans per --sessions")
    count = max(1, spans // 12)
    turns, called = [], []
    for turn in range(count):
        budget = spans // count + (1 if turn < spans % count else 0)
        cycles, tools = (budget - 3) // 3, budget - 3 - 2 * ((budget - 3) // 3)
        groups = []
        for cycle in range(cycles):
            size = tools // cycles + (1 if cycle < tools % cycles else 0)
            names = [list(TOOL_RESULTS)[_pick(index, turn, cycle, n) % len(TOOL_RESULTS)] for n in range(size)]
            called += names
            groups.append(tuple(ToolUse(name, {"city": f"city-{index % 97}", "day": turn}, TOOL_RESULTS[name])
                                for name in names))
        turns.append(TurnScript(f"Request {turn + 1} of session {index}: plan my trip.", tuple(groups),
                                f"Here is what I found for request {turn + 1}."))
    variant = index % 4
    expected = (called if variant == 0 else called[::-1] if variant == 1 else called[:-1] if variant == 2
                else called[::2])
    return turns, expected


def generate(path: Path, spans: int, sessions: int) -> int:
    """Write the JSONL file; the number of lines (span and event records)."""
    from examples.data.traces.make_examples import strands_session_records

    lines = 0
    with path.open("w", encoding="utf-8") as handle:
        for index in range(sessions):
            turns, _ = session_plan(index, spans // sessions + (1 if index < spans % sessions else 0))
            span_records, event_records = strands_session_records(
                f"bench-session-{index:06d}", turns, start_ns=1_795_165_200_000_000_000 + index * 60_000_000_000)
            for record in span_records + event_records:
                handle.write(json.dumps(record) + "\n")
            lines += len(span_records) + len(event_records)
    return lines


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_phase(phase: str, path: Path, spans: int, sessions: int) -> dict[str, Any]:
    """One phase, in this process; its row."""
    row: dict[str, Any] = {"phase": phase}
    if phase == "baseline":
        imported = _rss_mb()
        started = time.perf_counter()
        count = 0
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if json.loads(line).get("startTimeUnixNano") is not None:
                    count += 1
        row["spans"] = count
    else:
        from eval_pipeline.traces.files import read_files_source
        from eval_pipeline.traces.request import FilesSource

        evaluate = phase == "evaluate"
        if evaluate:
            from eval_pipeline.traces.evaluation import run_evaluations
            from eval_pipeline.traces.evaluators.registry import resolve_evaluator
            from eval_pipeline.traces.ground_truth import GroundTruth, SessionMetadata
            from eval_pipeline.traces.sessions import sessions_from_traces

            evaluators = [resolve_evaluator(evaluator_id) for evaluator_id in EVALUATORS]
            metadata = {}
            for index in range(sessions):
                _, expected = session_plan(index, spans // sessions + (1 if index < spans % sessions else 0))
                metadata[f"bench-session-{index:06d}"] = SessionMetadata(
                    f"bench-session-{index:06d}", ground_truth=GroundTruth(expected_tool_names=tuple(expected)))
        imported = _rss_mb()
        started = time.perf_counter()
        frame = read_files_source(FilesSource(paths=[str(path)]), root=path.parent)
        row["spans"] = len(frame)
        if evaluate:
            row["ingest_s"] = time.perf_counter() - started
            found = sessions_from_traces(frame)
            row["sessions_s"] = time.perf_counter() - started - row["ingest_s"]
            results = run_evaluations(found, metadata, evaluators).frame
            row |= {"sessions": len(found), "results": len(results),
                    "errors": int(results["error"].notna().sum()) if "error" in results else 0,
                    "mean_scores": results.groupby("evaluator_id")["score"].mean().round(4).to_dict()}
    row["seconds"] = time.perf_counter() - started
    peak = _rss_mb()
    row |= {"spans_per_s": row["spans"] / row["seconds"] if row["seconds"] else float("inf"),
            "peak_rss_mb": round(peak, 1), "import_rss_mb": round(imported, 1),
            "work_rss_mb": round(max(peak - imported, 0.0), 1)}
    if phase != "baseline":
        row["table_mb"] = round(table_mb(frame), 1)
    return row


def table_mb(frame: Any) -> float:
    """The ``traces`` table's own size: its columns' memory, strings included (``memory_usage(deep=True)``)."""
    return float(frame.memory_usage(deep=True, index=False).sum()) / 2**20


def _child(phase: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "--phase", phase, "--file", str(path), "--spans",
                             str(args.spans), "--sessions", str(args.sessions)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--json", action="store_true", help="also print each phase's row as a JSON line")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.file, args.spans, args.sessions)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spans.jsonl"
        started = time.perf_counter()
        lines = generate(path, args.spans, args.sessions)
        size = path.stat().st_size / 2**20
        print(f"{args.spans} spans of {args.sessions} sessions, {lines} JSONL lines (spans + event records), "
              f"{size:.1f} MiB; written in {time.perf_counter() - started:.1f} s")
        rows = [_child(phase, path, args) for phase in PHASES]
    base = rows[0]
    print(f"{'phase':>9}  {'spans/s':>10}  {'seconds':>8}  {'x baseline time':>15}  {'peak RSS MB':>11}  "
          f"{'x baseline peak':>15}  {'work RSS MB':>11}  {'table MB':>8}  {'work / table':>12}")
    for row in rows:
        table = row.get("table_mb")
        print(f"{row['phase']:>9}  {row['spans_per_s']:>10.0f}  {row['seconds']:>8.2f}  "
              f"{row['seconds'] / base['seconds']:>15.1f}  {row['peak_rss_mb']:>11.1f}  "
              f"{row['peak_rss_mb'] / base['peak_rss_mb']:>15.1f}  {row['work_rss_mb']:>11.1f}  "
              f"{table if table is not None else '':>8}  "
              f"{row['work_rss_mb'] / table if table else float('nan'):>12.1f}")
    evaluate = rows[-1]
    print(f"evaluate: ingest {evaluate['ingest_s']:.2f} s, sessions {evaluate['sessions_s']:.2f} s, evaluators "
          f"{evaluate['seconds'] - evaluate['ingest_s'] - evaluate['sessions_s']:.2f} s; {evaluate['sessions']} "
          f"sessions, {evaluate['results']} results, {evaluate['errors']} errors; mean scores "
          f"{evaluate['mean_scores']}")
    if args.json:
        for row in rows:
            print(json.dumps(row))


if __name__ == "__main__":
    main()
