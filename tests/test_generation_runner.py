"""The generation runner and its request cache, with a scripted in-process sampler that counts requests."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.precomputed import PrecomputedSampler
from eval_pipeline.inference.runner import CHUNK_REQUESTS, run_generations


class ScriptedSampler:
    """Echoes the prompt upper-cased; fails on prompts listed in ``failing``; counts what it was asked."""

    backend = "scripted"

    def __init__(self, failing: set[str] | None = None, version: str = "v1") -> None:
        self.failing, self.version, self.seen = failing or set(), version, []

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "version": self.version}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        self.seen += [(r.sample_id, r.sample_index) for r in requests]
        out = []
        for r in requests:
            prompt = r.messages[-1].content
            out.append(Completion.failed("scripted failure") if prompt in self.failing
                       else Completion(output=f"{prompt.upper()}#{r.sample_index}", tokens_in=1, tokens_out=2))
        if on_progress:
            on_progress(len(requests))
        return out


def samples(n: int) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "input": [f"q{i}" for i in range(n)],
                         "input_kind": "text", "row_hash": [f"h{i}" for i in range(n)]})


def test_second_run_is_served_from_the_cache(tmp_path: Path) -> None:
    cache, params = RequestCache(tmp_path / "c.sqlite"), GenerationParams()
    first_sampler, second_sampler = ScriptedSampler(), ScriptedSampler()
    first, stats1 = run_generations(samples(5), "m", first_sampler, params, num_samples=2, cache=cache)
    second, stats2 = run_generations(samples(5), "m", second_sampler, params, num_samples=2, cache=cache)
    assert (stats1.generated, stats1.cached) == (10, 0) and (stats2.generated, stats2.cached) == (0, 10)
    assert second_sampler.seen == [] and second["cached"].all() and not first["cached"].any()
    assert second["output"].tolist() == first["output"].tolist()
    assert first["output"].tolist()[:2] == ["Q0#0", "Q0#1"]


def test_everything_that_changes_the_output_changes_the_key(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    run_generations(samples(3), "m", ScriptedSampler(), GenerationParams(), cache=cache)
    for sampler, params, system in [
        (ScriptedSampler(version="v2"), GenerationParams(), None),        # another model
        (ScriptedSampler(), GenerationParams(max_tokens=5), None),         # another parameter
        (ScriptedSampler(), GenerationParams(seed=1), None),               # another seed
        (ScriptedSampler(), GenerationParams(), "be brief"),               # another input
    ]:
        _, stats = run_generations(samples(3), "m", sampler, params, system_prompt=system, cache=cache)
        assert stats.generated == 3, (sampler.identity(), params, system)
    _, stats = run_generations(samples(3), "renamed", ScriptedSampler(), GenerationParams(), cache=cache)
    assert stats.cached == 3  # the partition name is not part of the output


def test_failures_are_rows_and_are_retried_next_time(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    frame, stats = run_generations(samples(4), "m", ScriptedSampler(failing={"q2"}), GenerationParams(), cache=cache)
    assert len(frame) == 4 and stats.errors == 1
    assert frame.loc[2, "error"] == "scripted failure" and pd.isna(frame.loc[2, "output"])
    retry = ScriptedSampler()
    frame, stats = run_generations(samples(4), "m", retry, GenerationParams(), cache=cache)
    assert retry.seen == [("s2", 0)] and stats.errors == 0 and frame["error"].isna().all()


def test_progress_reports_every_request_and_cache_writes_per_chunk(tmp_path: Path) -> None:
    cache, reports = RequestCache(tmp_path / "c.sqlite"), []
    n = CHUNK_REQUESTS + 5
    run_generations(samples(n), "m", ScriptedSampler(), GenerationParams(), cache=cache,
                    on_progress=lambda done, total: reports.append((done, total)))
    assert reports[0] == (0, n) and reports[-1] == (n, n) and len(cache) == n


def test_identical_prompts_are_generated_once(tmp_path: Path) -> None:
    frame = pd.DataFrame({"sample_id": ["a", "b"], "input": ["same", "same"], "input_kind": "text",
                          "row_hash": ["1", "2"]})
    sampler = ScriptedSampler()
    out, _ = run_generations(frame, "m", sampler, GenerationParams(), cache=RequestCache(tmp_path / "c.sqlite"))
    assert len(sampler.seen) == 1 and out["output"].tolist() == ["SAME#0", "SAME#0"]


def test_precomputed_from_file_by_id_prompt_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"task_id": "s0", "completion": "a"}\n{"task_id": "s0", "completion": "b"}\n'
                    '{"prompt": "q1", "response": "c"}\n')
    frame, stats = run_generations(samples(3), "m", PrecomputedSampler.from_file(str(path)), GenerationParams(),
                                   num_samples=2, cache=RequestCache(tmp_path / "c.sqlite"))
    assert frame["output"].tolist()[:3] == ["a", "b", "c"]
    assert frame["error"].notna().sum() == 3 and "no precomputed response for sample 's2'" in frame.loc[4, "error"]
    assert stats.cached == 0  # lookups are not cached


@pytest.mark.parametrize("identifier", [None, "second"])
def test_precomputed_from_dataset_model_responses(identifier: str | None) -> None:
    frame = samples(1).assign(metadata='{"modelResponses": [{"response": "one", "modelIdentifier": "first"},'
                                       ' {"response": "two", "modelIdentifier": "second"}]}')
    out, _ = run_generations(frame, "m", PrecomputedSampler.from_dataset(frame, identifier), GenerationParams())
    assert out.loc[0, "output"] == ("one" if identifier is None else "two")
