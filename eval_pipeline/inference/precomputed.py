"""The ``precomputed`` backend: responses that already exist, from the dataset or a file.

A ``responses:`` file is read by the reader ``RESPONSE_READERS`` registers for its suffix (``.eval``: an Inspect AI
log; ``.json``: an Inspect JSON log, else JSON lines), any other file as JSON lines."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.data.jsonl import jsonl_records
from eval_pipeline.data.sources import read_source
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import Backend
from eval_pipeline.inference.base import (
    Completion,
    GenerationParams,
    GenerationRequest,
    ProgressCallback,
    refuse_tools,
)
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths
from eval_pipeline.registry import Registry

_RESPONSE_FIELDS = ("response", "output", "completion", "prediction")
_KEY_FIELDS = ("sample_id", "task_id", "id", "recordId")


class PrecomputedSampler:
    """Looks responses up by (sample id, sample index), falling back to the prompt text."""

    backend = "precomputed"
    cacheable = False
    sends_requests = False
    """Its answers are read, not requested: a dry run has nothing of it to send (``inference.planning``)."""
    request_fields = ("sample_id",)
    """A response belongs to its item: two items with the same prompt are two requests (never one shared answer)."""
    chunk_requests = 1 << 62
    """All requests in one call, so a prompt shared by several items is seen as ambiguous."""

    def __init__(self, by_id: dict[tuple[str, int], str], by_prompt: dict[tuple[str, int], str],
                 origin: str, errors: dict[tuple[str, int], str] | None = None, every_item: bool = False) -> None:
        self._by_id, self._by_prompt, self.origin = by_id, by_prompt, origin
        self._errors = dict(errors or {})
        self.every_item = every_item
        """Every item must have a response (or a recorded error) in the file: checked by ``check_items``."""
        recorded = sorted(by_id.items()) + sorted(by_prompt.items())
        digest = hashlib.sha256(json.dumps(recorded + ([["errors", sorted(self._errors.items())]]
                                                       if self._errors else [])).encode())
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
        """Responses in a file, read by the reader registered for its suffix (JSON lines for any other)."""
        if "://" not in uri and not set("*?[") & set(uri) and not Path(uri).exists():
            raise EvalInputError("responses file not found", file=uri, field="responses")
        suffix = Path(uri.split("?", 1)[0]).suffix.lower()
        recorded = RESPONSE_READERS.get(suffix if suffix in RESPONSE_READERS else ".jsonl")(uri)
        return cls(recorded.by_id, recorded.by_prompt, uri, recorded.errors, recorded.every_item)

    def check_items(self, samples: pd.DataFrame) -> None:
        """For a file that must answer every item (``every_item``): EvalInputError naming the file and the first items
        it has no response for (at sample_index 0)."""
        if not self.every_item:
            return
        missing = [sample_id for sample_id in samples["sample_id"].tolist()
                   if (sample_id, 0) not in self._by_id and (sample_id, 0) not in self._errors]
        if missing:
            shown = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise EvalInputError(f"no sample for item {shown} ({len(missing)} of {len(samples)} items); a sample's id "
                                 "must be the item's sample_id", file=self.origin, field="responses")

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "responses": self._digest}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: ProgressCallback | None = None) -> list[Completion]:
        refuse_tools(requests, self.backend)
        items_by_prompt: dict[tuple[str, int], set[str]] = {}
        for request in requests:
            items_by_prompt.setdefault((_prompt(request), request.sample_index), set()).add(request.sample_id)
        results = [self._lookup(request, items_by_prompt) for request in requests]
        if on_progress:
            on_progress(len(requests))
        return results

    def _lookup(self, request: GenerationRequest, items_by_prompt: dict[tuple[str, int], set[str]]) -> Completion:
        """The item's response by (sample id, index); else by prompt, unless other items share the prompt."""
        key = (request.sample_id, request.sample_index)
        if key in self._errors:
            return Completion.failed(f"the sample for {request.sample_id!r} (sample_index {request.sample_index}) "
                                     f"errored in {self.origin}: {self._errors[key]}")
        response = self._by_id.get(key)
        by_prompt = (_prompt(request), request.sample_index)
        if response is None and by_prompt in self._by_prompt:
            sharing = items_by_prompt.get(by_prompt, {request.sample_id})
            if len(sharing) > 1:
                return Completion.failed(
                    f"ambiguous precomputed response for sample {request.sample_id!r}: {self.origin} keys it by "
                    f"prompt, and {len(sharing)} items ({', '.join(sorted(map(repr, sharing))[:5])}) have that "
                    "prompt; give each response its sample_id (or id/task_id)")
            response = self._by_prompt[by_prompt]
        if response is None:
            return Completion.failed(f"no precomputed response for sample {request.sample_id!r} "
                                     f"(sample_index {request.sample_index}) in {self.origin}")
        return Completion(output=response, finish_reason="precomputed", tokens_out=None)


@dataclass
class RecordedResponses:
    """What a responses file holds: answers by (item id, sample index) and by (prompt, sample index), the errors it
    recorded by (item id, sample index), and whether it must answer every item of the dataset."""

    by_id: dict[tuple[str, int], str] = field(default_factory=dict)
    by_prompt: dict[tuple[str, int], str] = field(default_factory=dict)
    errors: dict[tuple[str, int], str] = field(default_factory=dict)
    every_item: bool = False


ResponsesReader = Callable[[str], RecordedResponses]
"""A responses file's URI (path, glob or ``s3://``) → its responses."""


def read_jsonl_responses(uri: str) -> RecordedResponses:
    """Responses in JSONL: a key (sample_id/task_id/id or prompt) and response/output/completion.

    Repeated keys are successive samples (sample_index 0, 1, …), as human-eval sample files have them.
    """
    recorded = RecordedResponses()
    seen: Counter[str] = Counter()
    for source in read_source(uri):
        for number, record in jsonl_records(source.data, source.name):
            response = next((record[f] for f in _RESPONSE_FIELDS if isinstance(record.get(f), str)), None)
            if response is None:
                raise EvalInputError(f"needs one of {', '.join(_RESPONSE_FIELDS)} as a string",
                                     file=source.name, line=number, field="response")
            key = next((str(record[f]) for f in _KEY_FIELDS if record.get(f) is not None), None)
            table, name = (recorded.by_id, key) if key is not None else (recorded.by_prompt, record.get("prompt"))
            if not isinstance(name, str):
                raise EvalInputError("needs a sample_id/task_id/id or the prompt", file=source.name,
                                     line=number, field="sample_id")
            index = sample_index(record, seen[name], source.name, number)
            seen[name] += 1
            if (name, index) in table:
                raise EvalInputError(f"a second response for {name!r} sample_index {index}", file=source.name,
                                     line=number, field="sample_index")
            table[(name, index)] = response
    return recorded


def read_inspect_log(uri: str) -> RecordedResponses:
    """An Inspect AI log's samples (``data/inspect_logs.py``): each item must have one, its id the item's id."""
    from eval_pipeline.data.inspect_logs import read_logged_responses

    logged = read_logged_responses(uri)
    return RecordedResponses(by_id=logged.responses, errors=logged.errors, every_item=True)


def read_json_responses(uri: str) -> RecordedResponses:
    """A ``.json`` file: an Inspect JSON log (one object with an ``eval`` header), else JSON lines."""
    documents = read_source(uri)
    try:
        whole = json.loads(documents[0].data) if len(documents) == 1 else None
    except ValueError:
        whole = None
    return (read_inspect_log if isinstance(whole, dict) and "eval" in whole else read_jsonl_responses)(uri)


RESPONSE_READERS: Registry[ResponsesReader] = Registry("responses format", "eval_pipeline.response_readers")
"""A responses file's suffix → its reader; a file whose suffix is not registered is read as ``.jsonl``. A plugin adds
a format through the entry point group ``eval_pipeline.response_readers``."""
RESPONSE_READERS.register(".jsonl", read_jsonl_responses)
RESPONSE_READERS.register(".eval", read_inspect_log)
RESPONSE_READERS.register(".json", read_json_responses)


def _prompt(request: GenerationRequest) -> str:
    """The text a prompt-keyed response is matched on: the last message's content."""
    return request.messages[-1].text


def sample_index(record: dict[str, Any], default: int, file: str, line: int) -> int:
    """A responses row's ``sample_index`` (default: how many responses its key had before): an integer ≥ 0."""
    value = record.get("sample_index", default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EvalInputError(f"must be a whole number of at least 0, got {value!r}", file=file, line=line,
                             field="sample_index")
    return value


def _build_sampler(spec: ModelSpec, suite: SuitePaths | None, samples: pd.DataFrame | None = None
                   ) -> PrecomputedSampler:
    if spec.responses:
        sampler = PrecomputedSampler.from_file(suite.resolve_uri(spec.responses) if suite else spec.responses)
        if samples is not None:
            sampler.check_items(samples)
        return sampler
    if samples is None:
        raise ValueError("a precomputed model without 'responses' reads them from the dataset's samples")
    return PrecomputedSampler.from_dataset(samples, spec.model_identifier)


BACKEND = Backend(name="precomputed", build=_build_sampler, temperature=(0.0, None))  # nothing is sampled
"""Responses recorded beforehand (a file, or the dataset's own), as ``backend_registry`` finds them."""
