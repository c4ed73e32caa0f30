"""The judge of the self-hosted batch-evaluation API: the client's judge model (the embedded local model unless
given) through its backend, with the judge cache under the state folder, so a resumed job pays for nothing twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.inference.model_spec import EMBEDDED_MODEL, ModelSpec
from eval_pipeline.traces.evaluators.base import Evaluator

JUDGE_MAX_TOKENS = 256


def default_judge() -> ModelSpec:
    """The embedded local model, as a suite's judge defaults to (weak: configure a larger judge for real use)."""
    return ModelSpec(name="judge", backend="local", model=EMBEDDED_MODEL)


class BatchJudge:
    """Builds a ``traces.evaluation.JudgeSetup`` for evaluators that judge; one sampler per model, shared by jobs."""

    def __init__(self, judge: ModelSpec | None, *, home: Path, root: Path) -> None:
        self.judge = judge
        self.home = home
        self.root = root
        self._samplers: dict[str, Any] = {}
        self._samplers_lock = threading.Lock()

    def setup(self, evaluators: list[Evaluator]) -> Any:
        """The judge of a job with judged evaluators (None otherwise): the client's judge model through its
        backend, the judge cache under the state folder, and ``sampler_for`` for custom evaluators' own models."""
        if not any(getattr(evaluator, "judged", False) for evaluator in evaluators):
            return None
        from eval_pipeline.inference.cache import RequestCache
        from eval_pipeline.traces.evaluation import JudgeSetup

        spec = self.judge or default_judge()
        cache_folder = self.home / "cache"
        cache_folder.mkdir(parents=True, exist_ok=True)
        return JudgeSetup(sampler=self.sampler(spec),
                          params=GenerationParams(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, top_p=1.0, seed=0),
                          label=f"{spec.backend}:{spec.model or spec.endpoint or spec.name}",
                          cache=RequestCache(cache_folder / "judgments.sqlite"), sampler_for=self.sampler)

    def sampler(self, spec: ModelSpec) -> Any:
        from eval_pipeline.inference.backends import build_sampler

        key = spec.model_dump_json()
        with self._samplers_lock:
            if key not in self._samplers:
                self._samplers[key] = build_sampler(_ProjectPaths(self.root), spec, pd.DataFrame())
            return self._samplers[key]


def close_judge(judge: Any) -> None:
    """Close a judge setup's cache (None: nothing to close)."""
    cache = getattr(judge, "cache", None)
    if cache is not None:
        cache.close()


class _ProjectPaths:
    """What a backend needs of a suite, for a model named outside any suite: paths relative to the project."""

    source_path: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def resolve_uri(self, uri: str) -> str:
        return uri if "://" in uri else str(self.resolve_path(uri))
