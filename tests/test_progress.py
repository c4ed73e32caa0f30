import pytest

from eval_pipeline.progress import Progress


def test_logs_each_tenth_once_and_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    progress = Progress("gen", lines.append)
    for done in range(0, 101, 5):
        progress(done, 100)
    assert lines[0] == "gen: 0/100 (0%)" and lines[-1] == "gen: 100/100 (100%)"
    assert len(lines) == 11
    assert "gen" in capsys.readouterr().err  # the bar is drawn on stderr


def test_empty_work_logs_once() -> None:
    lines: list[str] = []
    Progress("gen", lines.append, bar=False)(0, 0)
    assert lines == ["gen: 0/0 (100%)"]


def test_the_bar_counts_the_unit_the_caller_names(capsys: pytest.CaptureFixture[str]) -> None:
    rollouts = Progress("suite/m rollouts", unit="rollout")
    rollouts(3, 32)
    rollouts.close()
    requests = Progress("suite/m generation")
    requests(3, 32)
    requests.close()
    err = capsys.readouterr().err
    assert "rollout/s" in err or "s/rollout" in err  # tqdm's rate names the unit
    assert err.count("req/s") + err.count("s/req") >= 1 and "rollout" not in err.split("suite/m generation")[1]
