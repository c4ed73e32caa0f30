from pathlib import Path

import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites import load_suite, load_suites

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / "evals" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


MINIMAL = """\
suite: demo
dataset: {uri: data/qa.jsonl}
models:
  - {name: m1, backend: precomputed, responses: data/r.jsonl}
"""


def test_quickstart_suite_loads_with_paths_from_the_project_root() -> None:
    suite = load_suite(REPO / "evals" / "quickstart.yaml")
    assert suite.suite == "quickstart"
    assert [m.name for m in suite.models] == ["smollm2-135m"]
    assert Path(suite.resolve_uri(suite.dataset.uri)) == REPO / "examples" / "data" / "gen_qa.jsonl"
    assert [s.name for s in suite.scorers] == ["contains", "exact_match", "f1", "rouge_l"]
    assert {s.suite for s in load_suites(REPO / "evals")} >= {"quickstart"}


def test_scorer_shorthand_and_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, MINIMAL))
    assert [s.name for s in suite.scorers] == ["exact_match"]
    assert suite.generation.max_tokens == 64 and suite.generation.temperature == 0.0


def test_misspelled_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "scorrers: [f1]\n")
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert str(path) in message and ":5:" in message
    assert "unknown key 'scorrers'" in message and "did you mean 'scorers'" in message


def test_misspelled_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "generation: {max_token: 5}\n")
    with pytest.raises(EvalInputError, match=r"generation\.max_token.*did you mean 'max_tokens'"):
        load_suite(path)


def test_unknown_backend_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("precomputed", "telepathy"))
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert "models.0.backend" in str(caught.value) and "unknown backend 'telepathy'" in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_required_key_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="field 'dataset': required key is missing"):
        load_suite(write(tmp_path, "suite: demo\nmodels: [{name: m, backend: precomputed}]\n"))
    with pytest.raises(EvalInputError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"suite\.yaml:3: not valid YAML"):
        load_suite(write(tmp_path, "suite: demo\nmodels: [a\nb: c\n"))


def test_local_model_needs_a_model(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="a local model needs 'model'"):
        load_suite(write(tmp_path, "suite: demo\ndataset: {uri: x}\nmodels: [{name: m}]\n"))


def test_duplicate_model_names_rejected(tmp_path: Path) -> None:
    text = MINIMAL + "  - {name: m1, backend: precomputed}\n"
    with pytest.raises(EvalInputError, match="duplicate names"):
        load_suite(write(tmp_path, text))


def test_environment_references_expand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("DATA_ROOT", "/srv/data")
    text = MINIMAL.replace("data/qa.jsonl", "'${DATA_ROOT}/qa.jsonl'") + "watch:\n  dir: ${EVAL_PIPELINE_HOME}/ckpt\n"
    suite = load_suite(write(tmp_path, text))
    assert suite.dataset.uri == "/srv/data/qa.jsonl"
    assert suite.watch is not None and suite.watch.dir == str(tmp_path / "state" / "ckpt")


def test_watched_checkpoint_resolves_as_a_local_model(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, MINIMAL + f"watch: {{dir: {tmp_path}/ckpt}}\n"))
    (tmp_path / "ckpt" / "step-100").mkdir(parents=True)
    model = suite.model("step-100")
    assert model.backend == "local" and model.model == str(tmp_path / "ckpt" / "step-100")
    with pytest.raises(KeyError, match="has no model 'step-200'"):
        suite.model("step-200")


def test_suite_name_must_be_an_identifier(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="field 'suite'"):
        load_suite(write(tmp_path, MINIMAL.replace("suite: demo", "suite: my-demo")))
