"""The registries of backends, scorers, environments and task kinds: declarations read from the registry, lazy
loading (no torch to name a local model), and plugins found through entry points without installing them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.agents.registry import ENVIRONMENTS
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import BACKEND_REGISTRY, Backend, backend
from eval_pipeline.inference.backends import build_remote_sampler
from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
from eval_pipeline.inference.model_spec import ModelSpec
from eval_pipeline.registry import Registry
from eval_pipeline.scoring.kinds import Score, ScorerKind
from eval_pipeline.scoring.registry import SCORERS, score_generations, validate_scorers
from eval_pipeline.scoring.spec import ScorerSpec

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''
"""A plugin outside eval_pipeline: a backend, a scorer, an environment kind and a task kind."""
from eval_pipeline.inference.backend_registry import Backend, SpecKey
from eval_pipeline.inference.base import Completion
from eval_pipeline.scoring.kinds import Score, ScorerKind


class EchoSampler:
    def __init__(self, text):
        self.text = text


def build(spec, suite, samples=None):
    return EchoSampler(spec.model)


BACKEND = Backend(name="echo", build=build, needs=(SpecKey("model", "the text to echo"),), temperature=(0.0, 0.5))


class Shout(ScorerKind):
    def problem(self, spec):
        return None if spec.pattern is None else ("pattern", "shout takes no pattern")

    def score(self, spec, prediction, reference):
        return Score(1.0 if prediction.isupper() else 0.0)


SHOUT = Shout()
ENVIRONMENT = object()
TASK = object()
'''

ENTRY_POINTS = '''
[eval_pipeline.backends]
echo = echo_plugin:BACKEND

[eval_pipeline.scorers]
shout = echo_plugin:SHOUT

[eval_pipeline.environments]
echo_env = echo_plugin:ENVIRONMENT

[eval_pipeline.task_kinds]
echo_task = echo_plugin:TASK
'''


def write_plugin(folder: Path) -> Path:
    """``echo_plugin`` and its distribution metadata (as ``pip install`` would leave them), in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "echo_plugin.py").write_text(PLUGIN)
    info = folder / "echo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder


def run_python(code: str, *, path: Path | None = None, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (nothing imported yet), with ``path`` first on its module path."""
    environment = {**os.environ, **(env or {})}
    if path is not None:
        environment["PYTHONPATH"] = os.pathsep.join([str(path), environment.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          check=False, cwd=ROOT, env=environment)


def test_the_builtin_backends_and_what_they_declare() -> None:
    from eval_pipeline.inference.model_spec import (
        BACKENDS,
        LIKELIHOOD_BACKENDS,
        REMOTE_BACKENDS,
        TEMPERATURE_RANGES,
    )

    assert set(BACKENDS) == {"local", "precomputed", "recorded", "bedrock", "sagemaker", "sagemaker_package", "openai",
                             "vllm"}
    assert set(REMOTE_BACKENDS) == {"bedrock", "sagemaker", "sagemaker_package", "openai", "vllm"}
    assert set(LIKELIHOOD_BACKENDS) == {"local", "openai"}
    assert TEMPERATURE_RANGES == {"local": (0.0, None), "precomputed": (0.0, None), "recorded": (0.0, None),
                                  "bedrock": (0.0, 1.0),
                                  "sagemaker": (0.0, None), "sagemaker_package": (0.0, None), "openai": (0.0, 2.0),
                                  "vllm": (0.0, None)}
    for name in BACKENDS:
        declaration = backend(name)
        assert isinstance(declaration, Backend) and declaration.name == name
        module = BACKEND_REGISTRY._paths[name].partition(":")[0]  # registered by import path, not yet loaded
        assert declaration.build.__module__ == module  # declared beside the sampler it builds
    assert [need.key for need in backend("openai").needs] == ["base_url", "model"]
    assert backend("bedrock").batch and not backend("openai").batch


def test_an_unknown_backend_names_the_closest_one() -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'bedrok' \(did you mean 'bedrock'\?\); known: bedrock"):
        ModelSpec(name="m", backend="bedrok", model="x")


@pytest.mark.parametrize(("spec", "message"), [
    ({"backend": "openai", "model": "m"}, "an openai model needs 'base_url': the server's base URL"),
    ({"backend": "openai", "base_url": "http://127.0.0.1:1/v1"}, "an openai model needs 'model': the name the server"),
    ({"backend": "local"}, "a local model needs 'model': a directory, a Hugging Face id"),
    ({"backend": "openai", "base_url": "http://h/v1", "model": "m", "mode": "batch"},
     "mode 'batch' is for bedrock models"),
])
def test_a_spec_lacking_what_its_backend_needs_says_what(spec: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSpec(name="m", **spec)


def test_only_a_remote_backend_builds_a_remote_sampler_and_only_some_give_likelihoods() -> None:
    with pytest.raises(ValueError, match="'local' is not a remote backend"):
        build_remote_sampler(ModelSpec(name="m", backend="local", model="x"))
    with pytest.raises(ValueError, match="backend 'bedrock' gives no log-likelihoods; these do: local, openai"):
        build_likelihood_scorer(None, ModelSpec(name="m", backend="bedrock", model="x"))


def test_naming_a_local_model_does_not_import_torch(tmp_path: Path) -> None:
    """Loading a suite with a local model validates it against the local backend's declaration (so its module is
    loaded) without importing torch or transformers: those load when the model is."""
    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "a", "prompt": "2+2?", "referenceResponse": "4"}\n')
    suite = tmp_path / "local.yaml"
    suite.write_text(f"suite: local_only\ndataset: {{uri: {data}}}\nmodels:\n"
                     "  - {name: tiny, backend: local, model: smollm2-135m-instruct}\n")
    done = run_python(f"""
        import sys
        import eval_pipeline.suites.loading as loading
        suite = loading.load_suite({str(suite)!r})
        assert suite.models[0].backend == "local"
        assert "eval_pipeline.inference.local" in sys.modules, "the local backend's declaration was not read"
        heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        assert not heavy, heavy
    """, env={"EVAL_PIPELINE_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr


def test_a_scorer_kind_registered_in_code_validates_and_scores() -> None:
    class Length(ScorerKind):
        def problem(self, spec: ScorerSpec) -> tuple[str, str] | None:
            return ("pattern", "length takes no pattern") if spec.pattern else None

        def score(self, spec: ScorerSpec, prediction: str, reference: str) -> Score:
            return Score(float(len(prediction) == len(reference)))

    SCORERS.register("same_length", Length())
    try:
        with pytest.raises(EvalInputError, match=r"scorers\[0\]\.pattern.*length takes no pattern"):
            validate_scorers([ScorerSpec(name="same_length", pattern="x")])
        samples = pd.DataFrame({"sample_id": ["a", "b"], "reference": ["abc", "de"]})
        generations = pd.DataFrame({"sample_id": ["a", "b"], "model": "m", "sample_index": 0,
                                    "output": ["xyz", "xyz"], "request_hash": ["h1", "h2"], "error": [None, None]})
        scores = score_generations(samples, generations, [ScorerSpec(name="same_length")])
        assert scores["score"].tolist() == [1.0, 0.0]
    finally:
        SCORERS.unregister("same_length")
    with pytest.raises(EvalInputError, match="unknown scorer 'same_length'"):
        validate_scorers([ScorerSpec(name="same_length")])


def test_the_environment_kinds_are_registered_by_import_path() -> None:
    assert {"python", "agentcore", "lambda"} <= set(ENVIRONMENTS.names())
    assert ENVIRONMENTS._paths["lambda"] == "eval_pipeline.agents.lambda_agent:LAMBDA"


@pytest.mark.parametrize(("group", "name"), [
    ("eval_pipeline.backends", "echo"), ("eval_pipeline.scorers", "shout"),
    ("eval_pipeline.environments", "echo_env"), ("eval_pipeline.task_kinds", "echo_task"),
])
def test_a_plugin_is_found_through_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str,
                                                   name: str) -> None:
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path)))
    monkeypatch.delitem(sys.modules, "echo_plugin", raising=False)
    registry: Registry[object] = Registry(group.rsplit(".", 1)[1], group)
    assert name in registry.names()
    assert registry.get(name) is getattr(sys.modules["echo_plugin"], registry._paths[name].split(":")[1])


def test_a_plugin_backend_and_scorer_work_end_to_end(tmp_path: Path) -> None:
    """In a fresh interpreter with the plugin on its path: the backend is a known name with its own temperature
    range and needs, a suite using it loads and builds its sampler, and its scorer scores."""
    plugin = write_plugin(tmp_path / "site")
    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "a", "prompt": "2+2?", "referenceResponse": "4"}\n')
    suite = tmp_path / "echo.yaml"
    suite.write_text(f"suite: echo\ndataset: {{uri: {data}}}\nmodels:\n  - {{name: e, backend: echo, model: HI}}\n"
                     "generation: {temperature: 0.4}\nscorers: [shout]\n")
    too_hot = tmp_path / "too_hot.yaml"
    too_hot.write_text(suite.read_text().replace("temperature: 0.4", "temperature: 0.9"))
    done = run_python(f"""
        from eval_pipeline.errors import EvalInputError
        from eval_pipeline.inference.backends import build_sampler
        from eval_pipeline.inference.model_spec import BACKENDS, TEMPERATURE_RANGES, ModelSpec
        from eval_pipeline.scoring.registry import score_one
        from eval_pipeline.suites.loading import load_suite

        assert "echo" in BACKENDS and TEMPERATURE_RANGES["echo"] == (0.0, 0.5), (BACKENDS, TEMPERATURE_RANGES)
        try:
            ModelSpec(name="e", backend="echo")
            raise SystemExit("a spec without 'model' passed")
        except ValueError as exc:
            assert "an echo model needs 'model': the text to echo" in str(exc), exc
        suite = load_suite({str(suite)!r})
        sampler = build_sampler(suite, suite.models[0], None)
        assert type(sampler).__name__ == "EchoSampler" and sampler.text == "HI"
        assert score_one(suite.scorers[0], "LOUD", "x").value == 1.0
        assert score_one(suite.scorers[0], "quiet", "x").value == 0.0
        try:
            load_suite({str(too_hot)!r})
            raise SystemExit("a temperature above the plugin's range passed")
        except EvalInputError as exc:
            assert "outside the echo backend's range (0 to 0.5)" in str(exc), exc
    """, path=plugin, env={"EVAL_PIPELINE_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr + done.stdout
