"""Token ids for evaluation intermediates: which tokenizer, prompt rendering, padding into (ids, mask) arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval_pipeline.data.messages import ChatMessage, ToolSpec
from eval_pipeline.evaluations.base import Intermediate
from eval_pipeline.evaluations.job import runner_of
from eval_pipeline.inference.tool_text import protocol_messages, render_prompt


def tokenizer_of(inference: Any, encoding: Any = None) -> Any:
    """``encoding`` when given, else the tokenizer of the sampler (or of the sampler a scorer wraps)."""
    if encoding is not None:
        return encoding
    inference = runner_of(inference)
    for holder in (inference, getattr(inference, "sampler", None)):
        tokenizer = getattr(holder, "tokenizer", None) if holder is not None else None
        if tokenizer is not None:
            return tokenizer
    raise ValueError(f"{type(inference).__name__} has no tokenizer: pass one as encoding=")


def encode_text(tokenizer: Any, text: str, add_special_tokens: bool = False) -> list[int]:
    """Token ids of ``text``: a Hugging Face tokenizer, or any object with ``encode`` / ``encode_batch``."""
    if not text:
        return []
    if hasattr(tokenizer, "apply_chat_template") or hasattr(tokenizer, "convert_tokens_to_ids"):
        return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    if hasattr(tokenizer, "encode"):
        return list(tokenizer.encode(text))
    return list(tokenizer.encode_batch([text])[0])


def decode_all(tokenizer: Any, sequences: Sequence[Sequence[int]]) -> list[str]:
    """Texts of token id sequences: a Hugging Face tokenizer's ``decode``, else ``decode_batch`` (tiktoken-style)."""
    if callable(getattr(tokenizer, "decode", None)):
        return [tokenizer.decode(list(ids)) for ids in sequences]
    return list(tokenizer.decode_batch([list(ids) for ids in sequences]))


def prompt_token_ids(tokenizer: Any, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> list[int]:
    """A request's prompt ids as the local sampler builds them (``tool_text.render_prompt``): the chat template
    with the generation prompt, else the messages' contents joined by blank lines (with the special tokens)."""
    if getattr(tokenizer, "chat_template", None):
        return encode_text(tokenizer, render_prompt(tokenizer, messages, tools)[0])
    text = "\n\n".join(m["content"] for m in protocol_messages(messages, tools))
    return encode_text(tokenizer, text, add_special_tokens=True)


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id: pad, else EOS, else 0."""
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


def padded(sequences: Sequence[Sequence[int]], pad: int) -> list[Intermediate]:
    """Each sequence right-padded to the longest: (int64 ids, bool mask True on real tokens)."""
    from eval_pipeline.inference.likelihood_local import right_padded

    return right_padded(sequences, pad)
