"""Dataset and responses files: what is valid is accepted (a UTF-8 BOM, CRLF, JSON strings holding U+2028, U+0085
or \\x1c), and every error names the file and the line (non-UTF-8, a truncated last line, a bad sample_index, a
breakdown key no row has); the CLI exits 2 on them, as the README promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval_pipeline.data.formats import load_samples
from eval_pipeline.data.jsonl import jsonl_records, split_lines
from eval_pipeline.errors import EvalInputError, input_error_in
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.precomputed import PrecomputedSampler

ROWS = [{"id": "a", "prompt": "first\u2028line", "answer": "x\u0085y", "category": "c1"},
        {"id": "b", "prompt": "group\x1cseparator", "answer": "z", "topic": "t"},
        {"id": "c", "prompt": "plain", "answer": "\u2029end"},
        {"id": "d", "prompt": "tab\tand\x1f", "answer": "\x0b\x0c"}]


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def raw_jsonl(rows: list[dict[str, object]]) -> bytes:
    """The rows as JSONL with the characters unescaped (U+2028 and U+0085 as ensure_ascii=False writes them, and
    \\x1c raw too, as some writers emit control characters)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return text.replace("\\u001c", "\x1c").encode("utf-8")


def located(error: pytest.ExceptionInfo[EvalInputError], path: Path, line: int) -> None:
    assert error.value.file == str(path) and error.value.line == line, str(error.value)
    assert f"{path}:{line}:" in str(error.value)


# ---- accepted --------------------------------------------------------------------------------------------------------

def test_unicode_line_separators_inside_json_strings_are_kept(tmp_path: Path) -> None:
    data = raw_jsonl(ROWS)
    assert "\u2028".encode() in data and b"\x1c" in data and "\u0085".encode() in data
    frame = load_samples(str(write_bytes(tmp_path / "d.jsonl", data)))
    assert frame["sample_id"].tolist() == ["a", "b", "c", "d"]
    assert frame["input"].tolist() == [row["prompt"] for row in ROWS]
    assert frame["reference"].tolist() == [row["answer"] for row in ROWS]
    assert frame["line"].tolist() == [1, 2, 3, 4]
    escaped = json.dumps(ROWS[1]).encode()  # the same row with \\u001c escaped, as json.dumps writes it
    assert load_samples(str(write_bytes(tmp_path / "e.jsonl", escaped + b"\n")))["input"][0] == ROWS[1]["prompt"]


def test_a_utf8_bom_and_crlf_endings_are_accepted(tmp_path: Path) -> None:
    plain = load_samples(str(write_bytes(tmp_path / "plain.jsonl", raw_jsonl(ROWS))))
    bom = load_samples(str(write_bytes(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + raw_jsonl(ROWS).replace(b"\n",
                                                                                                          b"\r\n"))))
    assert bom["row_hash"].tolist() == plain["row_hash"].tolist()
    assert bom["sample_id"].tolist() == ["a", "b", "c", "d"]


def test_split_lines_only_on_newline() -> None:
    assert split_lines("a\u2028b\x1cc\u0085d\r\ne\n") == ["a\u2028b\x1cc\u0085d", "e"]
    assert split_lines("a\n\nb") == ["a", "", "b"]


# ---- refused, with file and line -----------------------------------------------------------------------------------

def test_non_utf8_dataset_names_the_line(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "d.jsonl", raw_jsonl(ROWS[:2]) + b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(EvalInputError, match="not UTF-8") as caught:
        load_samples(str(path))
    located(caught, path, 3)


def test_truncated_last_line_is_named(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "d.jsonl", raw_jsonl(ROWS[:2]) + b'{"prompt": "cut', )
    with pytest.raises(EvalInputError, match="truncated last line") as caught:
        load_samples(str(path))
    located(caught, path, 3)
    path = write_bytes(tmp_path / "e.jsonl", raw_jsonl(ROWS[:1]) + b'{"prompt": "x",\n' + raw_jsonl(ROWS[1:2]))
    with pytest.raises(EvalInputError, match="malformed JSON") as caught:
        load_samples(str(path))
    located(caught, path, 2)


def test_breakdown_key_in_no_row_is_refused(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "d.jsonl", raw_jsonl(ROWS))
    assert len(load_samples(str(path), breakdown_keys=["category", "topic"])) == 4  # a column; a field of one row
    with pytest.raises(EvalInputError, match="breakdown key 'catgory' is in none of all 4 rows") as caught:
        load_samples(str(path), breakdown_keys=["category", "catgory"])
    assert caught.value.field == "breakdown_keys" and "topic" in str(caught.value)
    with pytest.raises(EvalInputError, match="the first 1 rows"):
        load_samples(str(path), limit=1, breakdown_keys=["topic"])


def request(sample_id: str, prompt: str, index: int = 0) -> GenerationRequest:
    return GenerationRequest(sample_id=sample_id, sample_index=index, messages=({"role": "user", "content": prompt},))


def test_responses_file_with_bom_and_separators(tmp_path: Path) -> None:
    rows = [{"sample_id": "a", "response": "r\u2028a"}, {"sample_id": "a", "response": "r\x1cb"},
            {"sample_id": "b", "sample_index": 0, "response": "s\u0085b"}]
    path = write_bytes(tmp_path / "r.jsonl", b"\xef\xbb\xbf" + raw_jsonl(rows))
    sampler = PrecomputedSampler.from_file(str(path))
    outputs = sampler.generate([request("a", "p"), request("a", "p", 1), request("b", "q")],
                               GenerationParams(max_tokens=8))
    assert [c.output for c in outputs] == ["r\u2028a", "r\x1cb", "s\u0085b"]


@pytest.mark.parametrize("value", ['"zz"', "-1", "1.5", "true", "null", '"1"', "[0]"])
def test_bad_sample_index_names_file_and_line(tmp_path: Path, value: str) -> None:
    path = write_bytes(tmp_path / "r.jsonl", b'{"sample_id": "a", "response": "x"}\n'
                       + f'{{"sample_id": "a", "response": "y", "sample_index": {value}}}\n'.encode())
    with pytest.raises(EvalInputError) as caught:
        PrecomputedSampler.from_file(str(path))
    located(caught, path, 2)
    assert caught.value.field == "sample_index"


def test_a_whole_float_sample_index_is_accepted_and_a_repeated_one_refused(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "r.jsonl", b'{"sample_id": "a", "response": "x", "sample_index": 1.0}\n')
    out = PrecomputedSampler.from_file(str(path)).generate([request("a", "p", 1)], GenerationParams(max_tokens=8))
    assert out[0].output == "x"
    path = write_bytes(tmp_path / "s.jsonl", b'{"sample_id": "a", "response": "x"}\n'
                       b'{"sample_id": "a", "response": "y", "sample_index": 0}\n')
    with pytest.raises(EvalInputError, match="a second response for 'a' sample_index 0") as caught:
        PrecomputedSampler.from_file(str(path))
    located(caught, path, 2)


def test_non_utf8_or_truncated_responses_file(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "r.jsonl", b'{"sample_id": "a", "response": "\xff"}\n')
    with pytest.raises(EvalInputError, match="not UTF-8") as caught:
        PrecomputedSampler.from_file(str(path))
    located(caught, path, 1)
    path = write_bytes(tmp_path / "t.jsonl", b'{"sample_id": "a", "response": "x"}\n{"sample_id": "b", "resp')
    with pytest.raises(EvalInputError, match="truncated last line") as caught:
        PrecomputedSampler.from_file(str(path))
    located(caught, path, 2)


def test_jsonl_records_skips_blank_lines_but_counts_them() -> None:
    assert [n for n, _ in jsonl_records(b'\n{"a": 1}\n  \n{"b": 2}\n', "f")] == [2, 4]


# ---- input errors inside a run -------------------------------------------------------------------------------------

class _Info:
    """The shape of Dagster's SerializableErrorInfo: cls_name, message, cause, context."""

    def __init__(self, cls_name: str, message: str, cause: _Info | None = None) -> None:
        self.cls_name, self.message, self.cause, self.context = cls_name, message, cause, None


def test_input_error_in_finds_the_located_message_in_a_chain() -> None:
    from eval_pipeline.judging.metric import JudgeMetricError  # a subclass counts once it exists

    assert issubclass(JudgeMetricError, EvalInputError)
    chain = _Info("DagsterExecutionStepExecutionError", "Error occurred while executing op",
                  _Info("EvalInputError", "eval_pipeline.errors.EvalInputError: d.jsonl:2: malformed JSON\n",
                        _Info("JSONDecodeError", "json.decoder.JSONDecodeError: Unterminated string")))
    assert input_error_in(chain) == "d.jsonl:2: malformed JSON"
    assert input_error_in(_Info("JudgeMetricError", "x.json:3: bad")) == "x.json:3: bad"
    assert input_error_in(_Info("ValueError", "boom", _Info("KeyError", "k"))) is None


# ---- the CLI, end to end -------------------------------------------------------------------------------------------

SUITE = """\
suite: files
dataset: {uri: data/qa.jsonl}
models:
  - {name: answers, backend: precomputed, responses: data/answers.jsonl}
scorers: [exact_match]
schedule: null
"""


def cli(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVAL_PIPELINE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true",
           "DAGSTER_DISABLE_TELEMETRY": "true"}
    return subprocess.run([sys.executable, "-m", "eval_pipeline.cli", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "evals").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "evals" / "files.yaml").write_text(SUITE)
    (root / "data" / "qa.jsonl").write_bytes(raw_jsonl([{"id": r["id"], "prompt": r["prompt"], "answer": r["answer"]}
                                                        for r in ROWS[:3]]))
    (root / "data" / "answers.jsonl").write_bytes(raw_jsonl([{"sample_id": r["id"], "response": r["answer"]}
                                                             for r in ROWS[:3]]))
    return root


@pytest.mark.slow
def test_cli_runs_a_valid_dataset_with_separators(project: Path, tmp_path: Path) -> None:
    done = cli(project, tmp_path / "home", "run", "evals/files.yaml", "--json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)["metrics"]
    exact = next(m for m in metrics if m["metric"] == "exact_match" and not m["breakdown"])
    assert exact["value"] == 1.0 and exact["n"] == 3


def test_cli_misspelled_scorer_exits_2_before_any_run(project: Path, tmp_path: Path) -> None:
    (project / "evals" / "files.yaml").write_text(SUITE.replace("[exact_match]", "[exact_mach]"))
    done = cli(project, tmp_path / "home", "run", "evals/files.yaml")
    assert done.returncode == 2, done.stderr
    assert "files.yaml:5:" in done.stderr and "unknown scorer 'exact_mach'" in done.stderr
    assert not (tmp_path / "home" / "outputs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("file", "content", "line", "reason"), [
    ("qa.jsonl", b'{"id": "a", "prompt": "p", "answer": "x"}\n{"id": "b", "prompt": "cut', 2, "truncated last line"),
    ("answers.jsonl", b'{"sample_id": "a", "response": "x", "sample_index": "zz"}\n', 1, "sample_index"),
])
def test_cli_bad_input_file_exits_2_naming_file_and_line(project: Path, tmp_path: Path, file: str, content: bytes,
                                                         line: int, reason: str) -> None:
    path = project / "data" / file
    path.write_bytes(content)
    done = cli(project, tmp_path / "home", "run", "evals/files.yaml")
    assert f"{path}:{line}:" in done.stderr and reason in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr[-2000:]
