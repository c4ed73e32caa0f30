"""A Sampler that runs a Hugging Face causal LM in this process with transformers (CPU or GPU)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import Backend, SpecKey
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest, ProgressCallback
from eval_pipeline.inference.bos import with_bos
from eval_pipeline.inference.model_files import registry_uri, resolve_model_files
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths
from eval_pipeline.inference.tool_text import parse_tool_calls, render_prompt, request_seed

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_DTYPES = ("float32", "bfloat16", "float16")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_FINGERPRINT_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "chat_template.jinja", "chat_template.json", "tokenizer.model",
)

_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()
_SAMPLING_LOCK = threading.Lock()
"""``torch.manual_seed`` seeds one process-wide generator: seeding and sampling are one step, or two threads'
samples (concurrent rollouts) would draw from each other's seeds and no sampled answer could be reproduced."""


@dataclass
class _Prepared:
    """A request turned into prompt token ids, or the reason it could not be."""

    index: int
    ids: list[int] | None = None
    error: str | None = None


class LocalSampler:
    """Batched generation with transformers; one failed batch becomes error rows, never an exception."""

    backend = "local"
    _live: tuple[Any, Any] | None = None
    revision: str | None = None
    chat_template: bool | None = None
    """False: prompts are plain text without special tokens (lm-eval's default); True: the tokenizer's chat template
    (an error without one); None: the template when the tokenizer has one."""
    max_length: int | None = None
    """The context length (default: the model's); a longer prompt keeps its last ``max_length - max_tokens``
    tokens, as lm-eval cuts generation contexts."""
    add_bos_token: bool | None = None
    """lm-eval 0.4.13's ``add_bos_token``: True puts a BOS before each likelihood context, rolling text and prompt
    that does not start with one (a chat template's may), as lm-eval 0.4.13 does by default; None (unset) and False
    add none."""

    def __init__(self, model: str, batch_size: int = 8, device: str | None = None,
                 dtype: str | None = None, *, tracking_uri: str | None = None, chat_template: bool | None = None,
                 max_length: int | None = None, add_bos_token: bool | None = None) -> None:
        """``model``: an embedded name, a folder, a Hugging Face id, or a URI ``model_files`` fetches (``s3://``,
        ``models:/``, ``runs:/``; MLflow URIs read from ``tracking_uri``), fetched here, before any inference."""
        if batch_size < 1:
            raise EvalInputError(f"batch_size must be at least 1, got {batch_size}", field="batch_size")
        if max_length is not None and max_length < 1:
            raise EvalInputError(f"max_length must be at least 1, got {max_length}", field="max_length")
        self.chat_template, self.max_length, self.add_bos_token = chat_template, max_length, add_bos_token
        if dtype not in (None, "auto", *_DTYPES):
            raise EvalInputError(f"dtype must be one of auto, {', '.join(_DTYPES)}; got '{dtype}'",
                                 field="dtype")
        self.model_name = model
        self.model_path = resolve_model_files(model, tracking_uri=tracking_uri)
        self.batch_size = batch_size
        self._device_arg = device
        self._dtype_arg = dtype
        self._fingerprint: str | None = None

    @classmethod
    def from_loaded(cls, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, name: str,
                    batch_size: int = 8, revision: str | int | None = None) -> LocalSampler:
        """A sampler over a model already in memory (a training loop's live model), on the model's device.

        Its files cannot be fingerprinted, so ``revision`` stands for the weights in the cache key: give a value
        unique to them (e.g. ``f"{run_id}/step-{step}"``) and update ``sampler.revision`` when they change.
        Without a revision nothing is read from or written to the generation cache. Generation runs in eval
        mode; a model in training mode is put back into it afterwards.
        """
        if batch_size < 1:
            raise EvalInputError(f"batch_size must be at least 1, got {batch_size}", field="batch_size")
        sampler = cls.__new__(cls)
        sampler.model_name, sampler.model_path, sampler.batch_size = name, f"live:{name}", batch_size
        sampler._device_arg, sampler._dtype_arg = str(model.device), None
        sampler._fingerprint = None
        sampler._live = (tokenizer, model)
        sampler.revision = None if revision is None else str(revision)
        return sampler

    @property
    def cacheable(self) -> bool:
        """False for a live model without a revision: its weights may have changed since any cached answer."""
        return self._live is None or self.revision is not None

    # -- loading ---------------------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        """The torch device generation runs on (``cuda`` when available unless one was given)."""
        if self._device_arg and self._device_arg != "auto":
            return self._device_arg
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def dtype(self) -> str:
        """The weights' dtype name: bfloat16 on CUDA and float32 on CPU unless one was given."""
        if self._dtype_arg and self._dtype_arg != "auto":
            return self._dtype_arg
        return "bfloat16" if self.device.startswith("cuda") else "float32"

    def _load(self) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
        if self._live is not None:
            return self._live
        key = (self.model_path, self.device, self.dtype)
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        with _LOAD_LOCK:
            loaded = _LOADED.get(key)
            if loaded is None:
                loaded = _load_model(*key)
                _LOADED[key] = loaded
        return loaded

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The loaded tokenizer (shared by every sampler of this model, device and dtype in the process)."""
        return self._load()[0]

    @property
    def model(self) -> PreTrainedModel:
        """The loaded model, in eval mode."""
        return self._load()[1]

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (without special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- Sampler protocol ------------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """Backend, model as given, a fingerprint of the model's files and the weights' dtype (bfloat16 and
        float32 answer differently; batch size and device do not enter); a live model's revision in place of the
        fingerprint and dtype."""
        prompting = {key: value for key, value in (("chat_template", self.chat_template),
                                                   ("max_length", self.max_length),
                                                   ("add_bos_token", self.add_bos_token)) if value is not None}
        if self._live is not None:
            return {"backend": self.backend, "model": self.model_name, "revision": self.revision, **prompting}
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model_path)
        return {"backend": self.backend, "model": self.model_name, "fingerprint": self._fingerprint,
                "dtype": self.dtype, **prompting}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: ProgressCallback | None = None) -> list[Completion]:
        """Completions in request order; batches group one sample_index and similar prompt lengths."""
        results: list[Completion | None] = [None] * len(requests)
        if not requests:
            return []
        tokenizer, model = self._load()
        context = self.max_length or _context_length(model)
        prepared = [self._prepare(i, request, tokenizer) for i, request in enumerate(requests)]
        for item in prepared:
            if item.ids is not None and self.max_length is not None:  # lm-eval's left cut of the context
                budget = self.max_length - params.max_tokens
                if budget < 1:
                    item.error = f"max_tokens {params.max_tokens} leaves no room for a prompt in max_length " \
                                 f"{self.max_length}"
                else:
                    item.ids = item.ids[-budget:]
            if item.error is None and item.ids is not None and context is not None \
                    and len(item.ids) + params.max_tokens > context:
                item.error = (f"prompt of {len(item.ids)} tokens + max_tokens {params.max_tokens} "
                              f"exceeds the model's context of {context} tokens")
        failed = [item for item in prepared if item.error is not None]
        for item in failed:
            results[item.index] = Completion.failed(item.error or "")
        if failed and on_progress is not None:
            on_progress(len(failed))

        groups: dict[int, list[_Prepared]] = {}
        for item in prepared:
            if item.error is None:
                groups.setdefault(requests[item.index].sample_index, []).append(item)
        for sample_index in sorted(groups):
            group = sorted(groups[sample_index], key=lambda item: -len(item.ids or []))
            for batch_number, start in enumerate(range(0, len(group), self.batch_size)):
                batch = group[start:start + self.batch_size]
                seed = _batch_seed(params.seed, sample_index, batch_number)
                for item, completion in zip(batch, self._run_batch(batch, params, seed), strict=True):
                    results[item.index] = with_tool_calls(completion, requests[item.index])
                if on_progress is not None:
                    on_progress(len(batch))
        return [result if result is not None else Completion.failed("not generated") for result in results]

    # -- internals -------------------------------------------------------------------------------------------

    def _prepare(self, index: int, request: GenerationRequest,
                 tokenizer: PreTrainedTokenizerBase) -> _Prepared:
        """Prompt token ids via the chat template (or plain joined text), tools and tool turns rendered as
        ``tool_text.render_prompt`` does; a bad request fails alone."""
        try:
            text, add_special = self._prompt_text(tokenizer, request)
            ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
            if not add_special:  # lm-eval 0.4.13's BOS, unless the prompt (a chat template's) starts with one
                ids = with_bos(tokenizer, text, ids, self.add_bos_token)
            if not ids:
                return _Prepared(index, error="empty prompt")
            return _Prepared(index, ids=list(ids))
        except Exception as exc:
            return _Prepared(index, error=f"prompt: {type(exc).__name__}: {exc}")

    def _prompt_text(self, tokenizer: PreTrainedTokenizerBase, request: GenerationRequest) -> tuple[str, bool]:
        """The prompt and whether to add special tokens: ``render_prompt`` unless the chat template is switched
        off (the messages' texts joined by blank lines, no special tokens: what lm-eval reads without a template)."""
        if self.chat_template is False:
            if request.tools:
                raise ValueError("tools are offered through the chat template, which this model has switched off")
            return "\n\n".join(message.content for message in request.messages), False
        if self.chat_template and not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"chat_template is on, but the tokenizer of {self.model_name} has none")
        return render_prompt(tokenizer, request.messages, request.tools)

    def _run_batch(self, batch: list[_Prepared], params: GenerationParams, seed: int) -> list[Completion]:
        started = time.perf_counter()
        try:
            completions = self._generate_batch([item.ids or [] for item in batch], params, seed)
        except Exception as exc:
            latency = (time.perf_counter() - started) / len(batch)
            reason = f"generation: {type(exc).__name__}: {exc}"
            return [Completion.failed(reason, latency_s=latency) for _ in batch]
        latency = (time.perf_counter() - started) / len(batch)
        for completion in completions:
            completion.latency_s = latency
        return completions

    def _generate_batch(self, prompts: list[list[int]], params: GenerationParams,
                        seed: int) -> list[Completion]:
        import torch

        tokenizer, model = self._load()
        pad_id = _pad_token_id(tokenizer, model)
        eos_ids = _eos_token_ids(tokenizer, model)
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # left padding
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids):] = 1
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "pad_token_id": pad_id,
                                  "eos_token_id": sorted(eos_ids) or None}
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:  # generation ends at a stop string; the string itself is cut, as the services do
            kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
        with _SAMPLING_LOCK, torch.inference_mode(), eval_mode(model):
            torch.manual_seed(seed)
            output = model.generate(input_ids=input_ids.to(model.device),
                                    attention_mask=attention.to(model.device), **kwargs)
        new_tokens = output[:, width:].tolist()
        completions = []
        for ids, generated in zip(prompts, new_tokens, strict=True):
            stop_at = next((pos for pos, token in enumerate(generated) if token in eos_ids), None)
            kept = generated if stop_at is None else generated[:stop_at + 1]
            text, stopped = cut_at_stop(tokenizer.decode(kept, skip_special_tokens=True), params.stop)
            finish = "stop" if stop_at is not None or stopped else "length"
            completions.append(Completion(output=text, finish_reason=finish, tokens_in=len(ids),
                                          tokens_out=len(kept), cost_usd=None))
        return completions


def with_tool_calls(completion: Completion, request: GenerationRequest) -> Completion:
    """When the request offers tools, the answer's ``<tool_call>`` blocks as tool calls (taken out of the text;
    ``finish_reason`` becomes ``tool_calls``); otherwise the completion as it is."""
    if not request.tools or completion.output is None:
        return completion
    text, calls = parse_tool_calls(completion.output, request_seed(request.sample_id, request.sample_index,
                                                                    request.messages))
    if calls:
        completion.output, completion.tool_calls, completion.finish_reason = text, calls, "tool_calls"
    return completion


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """The model in eval mode for the block, then back in training mode if it was (a live training model)."""
    training = bool(getattr(model, "training", False))
    if training:
        model.eval()
    try:
        yield
    finally:
        if training:
            model.train()


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The text up to the first stop string (stripped), and whether one was found."""
    positions = [text.find(s) for s in stop if s and s in text]
    return (text[:min(positions)].strip(), True) if positions else (text.strip(), False)


def _load_model(path: str, device: str, dtype: str) -> tuple[Any, Any]:
    """Tokenizer and eval-mode model from ``path`` on ``device`` in ``dtype``."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EvalInputError(
            f"the local backend needs the 'local' extra (torch, transformers): {exc}") from exc
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    model.to(torch.device(device))
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer, model


def _pad_token_id(tokenizer: Any, model: Any) -> int:
    for candidate in (tokenizer.pad_token_id, model.generation_config.pad_token_id, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            return candidate
        if isinstance(candidate, list) and candidate:
            return int(candidate[0])
    return 0


def _eos_token_ids(tokenizer: Any, model: Any) -> set[int]:
    ids: set[int] = set()
    for candidate in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            ids.add(candidate)
        elif isinstance(candidate, list | tuple):
            ids.update(int(token) for token in candidate)
    return ids


def _context_length(model: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _batch_seed(seed: int, sample_index: int, batch_number: int) -> int:
    digest = hashlib.sha256(f"{seed}:{sample_index}:{batch_number}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def model_fingerprint(model_path: str) -> str:
    """A short sha256 of a model folder's config/tokenizer files and its weight files' names, sizes and
    sampled contents (independent of paths and modification times).

    A Hugging Face id that is not a local folder is fingerprinted by its name alone.
    """
    folder = Path(model_path)
    digest = hashlib.sha256()
    if not folder.is_dir():
        digest.update(f"hub:{model_path}".encode())
        return digest.hexdigest()[:16]
    for name in _FINGERPRINT_FILES:
        file = folder / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    weights = sorted(file for file in folder.iterdir()
                     if file.is_file() and file.name.endswith(_WEIGHT_SUFFIXES))
    listing = [(file.name, file.stat().st_size, _sampled_sha(file)) for file in weights]
    digest.update(json.dumps(listing).encode())
    return digest.hexdigest()[:16]


def _sampled_sha(file: Path, blocks: int = 16, block_size: int = 1 << 16) -> str:
    """sha256 of evenly spaced blocks of a (large) file: catches changed weights without reading it all."""
    size = file.stat().st_size
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        if size <= blocks * block_size:
            digest.update(handle.read())
        else:
            for block in range(blocks):
                handle.seek((size - block_size) * block // (blocks - 1))
                digest.update(handle.read(block_size))
    return digest.hexdigest()


def clear_model_cache() -> None:
    """Forget the models loaded in this process (frees their memory once nothing else holds them)."""
    with _LOAD_LOCK:
        _LOADED.clear()


__all__ = ["LocalSampler", "clear_model_cache", "model_fingerprint"]


def _build_sampler(spec: ModelSpec, suite: SuitePaths | None, samples: object = None) -> LocalSampler:
    from eval_pipeline.inference.backend_options import model_location

    return LocalSampler(model_location(spec, suite), batch_size=spec.batch_size, device=spec.device, dtype=spec.dtype,
                        tracking_uri=registry_uri(suite), chat_template=spec.chat_template, max_length=spec.max_length,
                        add_bos_token=spec.add_bos_token)


def _build_likelihood_scorer(spec: ModelSpec, suite: SuitePaths | None) -> Any:
    """A ``LocalLikelihoodScorer`` over the same model."""
    from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer

    return LocalLikelihoodScorer(_build_sampler(spec, suite), batch_size=spec.batch_size, max_length=spec.max_length)


BACKEND = Backend(
    name="local", build=_build_sampler, likelihood=_build_likelihood_scorer, tools=True,
    needs=(SpecKey("model", "a directory, a Hugging Face id, an s3:// folder or model.tar.gz, a models:/ or runs:/ "
                            "MLflow URI, or 'smollm2-135m-instruct' for the embedded model"),),
    model_files=True,
    temperature=(0.0, None),  # transformers: 0 is greedy, any positive value samples
)
"""The local backend (transformers, loaded on first use), as ``backend_registry`` finds it."""
