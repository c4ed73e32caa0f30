import json
from pathlib import Path

import pytest

from eval_pipeline.data.formats import load_samples
from eval_pipeline.data.schemas import SAMPLES
from eval_pipeline.errors import EvalInputError

REPO = Path(__file__).resolve().parent.parent


def jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_shipped_quickstart_dataset() -> None:
    frame = load_samples(str(REPO / "examples" / "data" / "gen_qa.jsonl"))
    assert len(frame) >= 30 and list(frame.columns) == SAMPLES.names
    assert frame["reference"].notna().all() and frame["category"].nunique() >= 5
    assert frame["sample_id"].is_unique and frame["row_hash"].str.len().eq(16).all()


def test_gen_qa_accepts_prompt_or_query_and_each_reference_field(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "qa.jsonl", [
        {"prompt": "p1", "referenceResponse": "r1", "category": "a"},
        {"query": "p2", "response": "r2"},
        {"prompt": "p3", "answer": "r3", "extra": 7},
        {"prompt": "p4"},
    ])
    frame = load_samples(str(path), "gen_qa")
    assert frame["input"].tolist() == ["p1", "p2", "p3", "p4"]
    assert frame["reference"].tolist()[:3] == ["r1", "r2", "r3"] and frame["reference"].isna().iloc[3]
    assert frame["sample_id"].tolist() == ["qa.jsonl:1", "qa.jsonl:2", "qa.jsonl:3", "qa.jsonl:4"]
    assert json.loads(frame["metadata"].iloc[2]) == {"extra": 7}
    assert frame["line"].tolist() == [1, 2, 3, 4]


def test_bedrock_rows_keep_model_responses(tmp_path: Path) -> None:
    row = {"prompt": "Q", "referenceResponse": "A", "category": "c",
           "modelResponses": [{"response": "mine", "modelIdentifier": "m"}]}
    frame = load_samples(str(jsonl(tmp_path / "b.jsonl", [row])))  # auto
    assert frame.loc[0, "reference"] == "A"
    assert json.loads(frame.loc[0, "metadata"])["modelResponses"][0]["response"] == "mine"


def test_messages_split_a_final_assistant_turn_into_the_reference(tmp_path: Path) -> None:
    rows = [{"id": "x", "messages": [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": "2+2?"},
                                     {"role": "assistant", "content": "4"}]}]
    frame = load_samples(str(jsonl(tmp_path / "m.jsonl", rows)))
    assert frame.loc[0, "input_kind"] == "messages" and frame.loc[0, "reference"] == "4"
    assert [m["role"] for m in json.loads(frame.loc[0, "input"])] == ["system", "user"]
    assert frame.loc[0, "sample_id"] == "x"


def test_glob_reads_every_file_in_order_and_limit_stops_early(tmp_path: Path) -> None:
    jsonl(tmp_path / "a.jsonl", [{"prompt": "a1"}, {"prompt": "a2"}])
    jsonl(tmp_path / "b.jsonl", [{"prompt": "b1"}])
    assert load_samples(str(tmp_path / "*.jsonl"))["input"].tolist() == ["a1", "a2", "b1"]
    assert load_samples(str(tmp_path / "*.jsonl"), limit=2)["input"].tolist() == ["a1", "a2"]
    assert load_samples(str(tmp_path))["input"].tolist() == ["a1", "a2", "b1"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"nope\.jsonl: dataset file not found"):
        load_samples(str(tmp_path / "nope.jsonl"))
    with pytest.raises(EvalInputError, match="no file matches"):
        load_samples(str(tmp_path / "*.jsonl"))


def test_unknown_format(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "qa.jsonl", [{"prompt": "p"}])
    with pytest.raises(EvalInputError, match="field 'format': unknown dataset format 'csv'"):
        load_samples(str(path), "csv")


def test_undetectable_format_names_the_line(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "qa.jsonl", [{"question": "p"}])
    with pytest.raises(EvalInputError, match=r"qa\.jsonl:1: cannot detect the dataset format"):
        load_samples(str(path))


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "qa.jsonl", [{"prompt": "ok"}, '{"prompt": "broken"', {"prompt": "fine"}])
    with pytest.raises(EvalInputError) as caught:
        load_samples(str(path))
    assert f"{path}:2: malformed JSON" in str(caught.value)
    assert caught.value.line == 2 and caught.value.file == str(path)


def test_row_without_prompt_names_the_field(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "qa.jsonl", [{"prompt": "ok"}, {"category": "x", "referenceResponse": "r"}])
    with pytest.raises(EvalInputError) as caught:
        load_samples(str(path), "gen_qa")
    assert str(caught.value).startswith(f"{path}:2: field 'prompt': missing")


def test_bad_field_types_and_messages(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r":1: field 'prompt': must be a string"):
        load_samples(str(jsonl(tmp_path / "a.jsonl", [{"prompt": 3}])))
    with pytest.raises(EvalInputError, match=r":1: field 'messages\[0\]'"):
        load_samples(str(jsonl(tmp_path / "b.jsonl", [{"messages": [{"role": "robot", "content": "x"}]}])))
    with pytest.raises(EvalInputError, match=r":1: field 'prompt': is empty"):
        load_samples(str(jsonl(tmp_path / "c.jsonl", [{"prompt": "  "}])))


def test_duplicate_ids_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r":2: field 'id': duplicate sample id 'q'"):
        load_samples(str(jsonl(tmp_path / "d.jsonl", [{"id": "q", "prompt": "a"}, {"id": "q", "prompt": "b"}])))
    (tmp_path / "e.jsonl").write_bytes(b'{"prompt": "\xff"}\n')
    with pytest.raises(EvalInputError, match="not UTF-8"):
        load_samples(str(tmp_path / "e.jsonl"))


def test_row_hash_changes_with_content_only(tmp_path: Path) -> None:
    first = load_samples(str(jsonl(tmp_path / "a.jsonl", [{"prompt": "p", "answer": "x"}])))
    same = load_samples(str(jsonl(tmp_path / "b.jsonl", [{"prompt": "p", "answer": "x"}])))
    other = load_samples(str(jsonl(tmp_path / "c.jsonl", [{"prompt": "p", "answer": "y"}])))
    assert first.loc[0, "row_hash"] == same.loc[0, "row_hash"] != other.loc[0, "row_hash"]
