import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("EVAL_PIPELINE_MODEL_CACHE", str(REPO / ".eval_pipeline" / "models"))

pytest_plugins = ["tests.fixtures_models"]


@pytest.fixture
def eval_home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A fresh state folder for one test: Dagster instance, MLflow store, cache and outputs all inside it."""
    home = tmp_path / "home"
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home
