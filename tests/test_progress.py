"""Progress lines: cadence (every 5% or 10 s, whichever first), rate and time left computed over this run's work
(cache hits said apart), plain lines without terminal escapes off a TTY, a live bar on one; and the hooks that feed
it: per-part progress inside a chunk, the stage progress the sandboxed verifier reports to, and ``wait()``'s
reading of a run's log."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest

from eval_pipeline.progress import (
    Progress,
    by_parts,
    format_duration,
    format_rate,
    is_progress_line,
    reporting,
    stage_progress,
)
from eval_pipeline.sdk.run_progress import RunProgress
from tests.clocks import SettableClock

ESCAPES = re.compile(r"\r|\x1b\[")


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def expected_line(description: str, done: int, total: int, elapsed: float, cached: int = 0) -> str:
    """The reference: rate over this run's work, time left to the second, written out independently."""
    rate = (done - cached) / elapsed
    left = max(1, round((total - done) / rate))
    left_text = (f"{left}s" if left < 60 else f"{left // 60}m{left % 60:02d}s" if left < 3600
                 else f"{left // 3600}h{left % 3600 // 60:02d}m")
    rate_text = (f"{rate:.0f} req/s" if rate >= 100 else f"{rate:.1f} req/s" if rate >= 1
                 else f"{1 / rate:.1f} s/req")
    cache = f" · {cached} from cache" if cached else ""
    return f"{description}: {done}/{total} ({done * 100 // total}%){cache} · {rate_text} · {left_text} left"


def test_a_line_names_count_rate_and_time_left() -> None:
    clock, lines = SettableClock(), []
    progress = Progress("quickstart/m generation", lines.append, clock=clock, terminal=False)
    progress(0, 1000)
    clock.now += 14.8
    progress(120, 1000)
    assert lines == ["quickstart/m generation: 0/1000 (0%)",
                     "quickstart/m generation: 120/1000 (12%) · 8.1 req/s · 1m49s left"]
    assert lines[1] == expected_line("quickstart/m generation", 120, 1000, 14.8)


def test_cadence_is_every_five_percent_when_work_is_fast() -> None:
    clock, lines = SettableClock(), []
    progress = Progress("gen", lines.append, clock=clock, terminal=False)
    for done in range(0, 1001):
        progress(done, 1000)
        clock.now += 0.125  # 50 items (5%) take 6.25 s: the 5% rule comes first
    counts = [int(re.search(r"(\d+)/1000", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert counts == list(range(0, 1001, 50))
    assert lines[5] == expected_line("gen", 250, 1000, 250 * 0.125)
    assert lines[-1] == "gen: done 1000/1000 in 2m05s · 8.0 req/s"


def test_cadence_is_every_ten_seconds_when_work_is_slow() -> None:
    clock, lines = SettableClock(), []
    progress = Progress("judge", lines.append, clock=clock, terminal=False)
    progress(0, 10_000)
    for done in range(1, 40):
        clock.now += 3.0  # 5% would be 500 items: the 10 s rule comes first
        progress(done, 10_000)
    counts = [int(re.search(r"(\d+)/10000", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert counts == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]  # 12 s apart (the first call at or after 10 s)
    assert lines[3] == expected_line("judge", 12, 10_000, 36.0)
    assert lines[3] == "judge: 12/10000 (0%) · 3.0 s/req · 8h19m left"  # 9988 × 3 s = 8 h 19 m 24 s


def test_cached_work_is_said_apart_and_left_out_of_the_rate() -> None:
    clock, lines = SettableClock(), []
    progress = Progress("gen", lines.append, clock=clock, terminal=False)
    progress(900, 1000)  # the cache answered 900 before anything was sent
    clock.now += 5.0
    progress(910, 1000)
    clock.now += 10.0
    progress(930, 1000)
    clock.now += 35.0
    progress(1000, 1000)
    assert lines[0] == "gen: 900/1000 (90%) · 900 from cache"
    assert lines[1] == expected_line("gen", 930, 1000, 15.0, cached=900)  # 30 sent in 15 s: 2.0/s, 35 s left
    assert lines[1] == "gen: 930/1000 (93%) · 900 from cache · 2.0 req/s · 35s left"
    assert lines[-1] == "gen: done 1000/1000 in 50s · 900 from cache · 2.0 req/s"


def test_all_cached_is_one_line_and_no_bar() -> None:
    lines: list[str] = []
    stream = TTY()
    Progress("gen", lines.append, terminal=True, stream=stream)(40, 40)
    assert lines == ["gen: done 40/40 · all from cache"]
    assert stream.getvalue() == "gen: done 40/40 · all from cache\n"


def test_nothing_to_do_is_one_line() -> None:
    lines: list[str] = []
    Progress("gen", lines.append, terminal=False)(0, 0)
    assert lines == ["gen: 0/0 (100%)"]


def test_off_a_tty_the_terminal_gets_the_same_lines_without_escapes() -> None:
    clock, lines, stream = SettableClock(), [], io.StringIO()
    progress = Progress("gen", lines.append, clock=clock, terminal=True, stream=stream)
    for done in range(0, 21):
        progress(done, 20)
        clock.now += 0.5
    progress.close()
    written = stream.getvalue()
    assert not ESCAPES.search(written)
    assert written.splitlines() == lines and len(lines) == 21  # 5% of 20 is one item
    assert lines[-1] == "gen: done 20/20 in 10s · 2.0 req/s"


def test_on_a_tty_a_live_bar_then_the_final_line() -> None:
    clock, lines, stream = SettableClock(), [], TTY()
    progress = Progress("suite/m rollouts", lines.append, clock=clock, terminal=True, stream=stream,
                        unit="rollout")
    for done in range(0, 5):
        progress(done, 4)
        clock.now += 1.0
    written = stream.getvalue()
    assert "\r" in written and "suite/m rollouts" in written  # tqdm draws over one line
    assert "rollout/s" in written or "s/rollout" in written  # its rate names the unit
    assert written.rstrip("\n").endswith("suite/m rollouts: done 4/4 in 4s · 1.0 rollout/s")
    assert lines[-1] == "suite/m rollouts: done 4/4 in 4s · 1.0 rollout/s"  # the run log gets plain lines


def test_work_started_off_the_main_thread_stays_off_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    made: list[Progress] = []
    thread = threading.Thread(target=lambda: made.append(Progress("gen", None)))
    thread.start()
    thread.join()
    made[0](0, 2)
    made[0](2, 2)
    assert made[0].terminal is False and capsys.readouterr().err == ""
    assert Progress("gen").terminal is True


def test_durations_and_rates_read_well() -> None:
    assert [format_duration(s) for s in (0, 0.2, 49, 65, 3599, 3600, 7380)] == [
        "0s", "1s", "49s", "1m05s", "59m59s", "1h00m", "2h03m"]
    assert format_rate(8.14, "req") == "8.1 req/s" and format_rate(123.4, "req") == "123 req/s"
    assert format_rate(0.25, "req") == "4.0 s/req"


def test_progress_lines_are_recognised_in_a_run_log() -> None:
    assert is_progress_line("q/m generation: 120/1000 (12%) · 8.1 req/s · 1m49s left")
    assert is_progress_line("q/m judging: done 16/16 in 3s · 5.3 req/s")
    assert not is_progress_line("judging m: 16 judge requests: 0 from cache, 16 sent, 0 errors")
    assert not is_progress_line("Finished execution of step")


def test_parts_count_as_whole_items() -> None:
    seen: list[tuple[int, int]] = []
    advance = by_parts(lambda d, t: seen.append((d, t)), [2, 3, 1], start=16, total=40)
    advance(1)  # half of the first item
    advance(1)  # the first item
    advance(3)  # the second
    advance(1)  # the last: the caller's to report, once its results are read
    assert seen == [(17, 40), (18, 40)]  # once per whole item


def test_the_verifier_reports_each_program_to_the_stage_progress() -> None:
    from eval_pipeline.sandbox import run_programs

    seen: list[tuple[int, int]] = []
    assert stage_progress() is None
    with reporting(lambda d, t: seen.append((d, t))):
        results = run_programs(["print(1)", "print(2)", "print(3)"], workers=2, timeout_s=20)
    assert stage_progress() is None and len(results) == 3
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_wait_reads_only_new_log_pages_and_keeps_the_latest_line() -> None:
    log = ["step started", "q/m generation: 0/10 (0%)", "q/m generation: 5/10 (50%) · 2.0 req/s · 3s left",
           "something else"]
    asked: list[str | None] = []

    def fetch(run_id: str, cursor: str | None) -> tuple[list[str], str | None, bool]:
        asked.append(cursor)
        start = int(cursor or 0)
        page = log[start:start + 2]
        return page, str(start + len(page)), start + 2 < len(log)

    follow = RunProgress(fetch)
    assert follow.latest("r") == "q/m generation: 5/10 (50%) · 2.0 req/s · 3s left"
    log.append("q/m generation: done 10/10 in 5s · 2.0 req/s")
    assert follow.latest("r") == "q/m generation: done 10/10 in 5s · 2.0 req/s"
    assert asked == [None, "2", "4"]


def test_likelihood_judging_moves_per_scored_batch_not_per_chunk() -> None:
    """Judging was silent, then jumped: likelihood verdicts reported once per chunk of 16 judgments. Now each
    batch the scorer finishes moves the count (here one request at a time: two levels make one judgment)."""
    import pandas as pd

    from eval_pipeline.inference.likelihood import ContinuationScore
    from eval_pipeline.judging import parse_custom_metrics
    from eval_pipeline.judging.likelihood_verdicts import CHUNK_JOBS, run_likelihood_judgments

    metric = parse_custom_metrics([{"customMetricDefinition": {
        "name": "Upbeat", "instructions": "Is it upbeat?\nPrompt: {{prompt}}\nResponse: {{prediction}}",
        "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                        {"definition": "Poor", "value": {"floatValue": 0}}]}}])[0]

    class OneByOne:
        backend = "scripted"

        def identity(self) -> dict[str, str]:
            return {"backend": self.backend}

        def loglikelihood(self, requests, on_progress=None):  # type: ignore[no-untyped-def]
            scores = []
            for request in requests:
                scores.append(ContinuationScore(-float(len(request.continuation)), False, 1))
                if on_progress is not None:
                    on_progress(1)
            return scores

    n = CHUNK_JOBS + 4
    ids = [f"s{i}" for i in range(n)]
    samples = pd.DataFrame({"sample_id": ids, "input": ["say hi"] * n, "input_kind": "text", "reference": "hi",
                            "metadata": "{}", "row_hash": ids})
    generations = pd.DataFrame({"sample_id": ids, "model": "m", "sample_index": 0, "output": "hi", "error": None})
    seen: list[tuple[int, int]] = []
    frame, _ = run_likelihood_judgments(samples, generations, [metric], OneByOne(), judge_model="x",
                                        on_progress=lambda d, t: seen.append((d, t)))
    assert len(frame) == n and frame["error"].isna().all()
    assert seen == [(d, n) for d in range(0, n + 1)]  # every judgment, in order, the chunks' ends included


def test_work_found_in_the_cache_along_the_way_is_left_out_of_the_rate(tmp_path: Path) -> None:
    """Likelihood chunks find their cached items as they go: those are said as from cache, and the rate and time
    left come from the items scored now (here 1 s each on the test clock)."""
    import pandas as pd

    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.inference.likelihood import TextScore
    from eval_pipeline.inference.likelihood_cache import with_cache
    from eval_pipeline.inference.likelihood_runner import CHUNK_ITEMS, run_text_likelihoods

    clock = SettableClock()

    class OneSecondEach:
        backend = "scripted"

        def identity(self) -> dict[str, str]:
            return {"backend": self.backend}

        def rolling_loglikelihood(self, texts, on_progress=None):  # type: ignore[no-untyped-def]
            scores = []
            for text in texts:
                clock.now += 1.0
                scores.append(TextScore(-1.0, 2, len(text.encode()), 1))
                if on_progress is not None:
                    on_progress(1)
            return scores

    def samples(n: int) -> pd.DataFrame:
        return pd.DataFrame({"sample_id": [f"t{i}" for i in range(n)], "input": [f"text {i}" for i in range(n)],
                             "row_hash": "h"})

    cache = RequestCache(tmp_path / "cache.sqlite")
    try:
        run_text_likelihoods(samples(CHUNK_ITEMS), "m", with_cache(OneSecondEach(), cache))  # the first chunk cached
        lines: list[str] = []
        progress = Progress("s/m log-likelihoods", lines.append, clock=clock, terminal=False)
        frame = run_text_likelihoods(samples(CHUNK_ITEMS + 8), "m", with_cache(OneSecondEach(), cache),
                                     on_progress=progress)
    finally:
        cache.close()
    assert int(frame["cached"].sum()) == CHUNK_ITEMS
    assert lines[1] == f"s/m log-likelihoods: {CHUNK_ITEMS}/{CHUNK_ITEMS + 8} (80%) · {CHUNK_ITEMS} from cache"
    assert lines[-1] == f"s/m log-likelihoods: done {CHUNK_ITEMS + 8}/{CHUNK_ITEMS + 8} in 8s · {CHUNK_ITEMS} from " \
                        "cache · 1.0 req/s"
    assert lines[-2] == expected_line("s/m log-likelihoods", CHUNK_ITEMS + 6, CHUNK_ITEMS + 8, 6.0,
                                      cached=CHUNK_ITEMS)


def test_wait_reads_a_webservers_run_log_through_graphql() -> None:
    """The webserver's ``logsForRun`` pages (as its GraphQL answers them) give the same progress lines."""
    from eval_pipeline.sdk.run_progress import PROGRESS_LOGS_QUERY, graphql_pages

    answers = {None: {"__typename": "EventConnection", "cursor": "c1", "hasMore": False, "events": [
        {"__typename": "RunStartEvent"},
        {"__typename": "LogMessageEvent", "message": "q/m judging: 4/8 (50%) · 2.0 req/s · 2s left"},
        {"__typename": "LogMessageEvent", "message": "judging m: 8 judge requests"}]}}
    asked: list[tuple[str, dict[str, object]]] = []

    def execute(query: str, variables: dict[str, object]) -> dict[str, object]:
        asked.append((query, variables))
        return {"logsForRun": answers[variables["cursor"]]}  # type: ignore[index]

    assert RunProgress(graphql_pages(execute)).latest("r1") == "q/m judging: 4/8 (50%) · 2.0 req/s · 2s left"
    assert asked == [(PROGRESS_LOGS_QUERY, {"runId": "r1", "cursor": None})]
