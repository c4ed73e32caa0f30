"""Prompts for the training-loop evaluators: a user template around each prompt, and chat-template variables
(``enable_thinking``) for a local checkpoint's sampler."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.inference.base import Sampler

TEMPLATE_FIELD = re.compile(r"\{(prompt|input)\}")
"""Where a user template puts the prompt: ``{prompt}`` or ``{input}``."""


def apply_user_template(samples: pd.DataFrame, template: str | None) -> pd.DataFrame:
    """Each prompt (a messages input: its last user message) put where ``{prompt}`` / ``{input}`` stands."""
    if not template:
        return samples

    def render(text: str) -> str:
        return TEMPLATE_FIELD.sub(lambda _: text, template)

    def apply(text: str, kind: str) -> str:
        if kind != "messages":
            return render(text)
        messages = json.loads(text)
        last = max(i for i, message in enumerate(messages) if message["role"] == "user")
        messages[last] = {**messages[last], "content": render(messages[last]["content"])}
        return json.dumps(messages, ensure_ascii=False)

    inputs = [apply(text, kind) for text, kind in zip(samples["input"], samples["input_kind"], strict=True)]
    return samples.assign(input=inputs)


def with_template_variables(tokenizer: Any, variables: Mapping[str, Any]) -> Any:
    """A copy of ``tokenizer`` whose chat template sees ``variables`` (e.g. ``enable_thinking``) as if they were
    passed to ``apply_chat_template``: each is set at the template's top before its first line."""
    template = getattr(tokenizer, "chat_template", None)
    if not variables or not isinstance(template, str):
        return tokenizer
    prefix = "".join("{%- set " + name + " = " + json.dumps(value) + " -%}" for name, value in variables.items())
    clone = copy.copy(tokenizer)
    clone.chat_template = prefix + template
    return clone


def template_sampler(model_path: str, tokenizer: Any, variables: Mapping[str, Any]) -> Sampler:
    """A local sampler over the checkpoint at ``model_path`` whose prompts are rendered by ``tokenizer`` (a
    tokenizer, a path to one, or None: the checkpoint's own) with the chat-template ``variables``."""
    from eval_pipeline.inference.local import LocalSampler, model_fingerprint

    base = LocalSampler(model_path)
    if tokenizer is None:
        chosen = base.tokenizer
    elif isinstance(tokenizer, str | Path):
        from transformers import AutoTokenizer

        chosen = AutoTokenizer.from_pretrained(str(tokenizer))
    else:
        chosen = tokenizer
    chosen = copy.copy(chosen)
    if chosen.pad_token_id is None:
        chosen.pad_token = chosen.eos_token
    chosen.padding_side = "left"
    chosen = with_template_variables(chosen, variables)
    template = str(getattr(chosen, "chat_template", "") or "")
    revision = (f"{model_fingerprint(base.model_path)}/template-"
                f"{hashlib.sha256(template.encode()).hexdigest()[:12]}")
    return LocalSampler.from_loaded(base.model, chosen, name=model_path, revision=revision)
