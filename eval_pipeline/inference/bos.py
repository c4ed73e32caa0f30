"""lm-eval 0.4.13's ``add_bos_token``, written out for a local tokenizer.

lm-eval 0.4.13's HF model encodes every context (and a rolling text, and a plain generation prompt) with the
tokenizer's special tokens unless ``add_bos_token=False``: a BOS before it, except when the text already starts
with the prefix token's text (``has_bos_prefix``) or the tokenizer has no BOS token at all (nothing is added then).
This project's default (``add_bos_token`` unset) is lm-eval's earlier behaviour, the same as ``add_bos_token=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def prefix_token_id(tokenizer: Any) -> int | None:
    """lm-eval's ``prefix_token_id``: BOS, else EOS; None when the tokenizer has neither."""
    for token in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token is not None:
            return int(token)
    return None


def with_bos(tokenizer: Any, text: str, ids: Sequence[int], add_bos_token: bool | None) -> list[int]:
    """``ids`` (``text`` encoded without special tokens) as lm-eval's ``tok_encode`` gives them: BOS first when
    ``add_bos_token`` is True, the tokenizer has a BOS and ``text`` does not already start with the prefix token's
    text; otherwise unchanged."""
    bos = tokenizer.bos_token_id
    if not add_bos_token or bos is None:
        return list(ids)
    prefix = prefix_token_id(tokenizer)
    if prefix is not None and text.startswith(tokenizer.decode([prefix])):
        return list(ids)
    return [int(bos), *ids]


__all__ = ["prefix_token_id", "with_bos"]
