"""Memos for what spans repeat: a session's chat spans each carry the conversation so far, so the same message
payload is decoded, and the same message written as JSON, once per later model call. Both are pure functions of
their input, so a memo changes no result, only the time.

Keys are exact: a text payload is its own key, any other payload its pickle (which records every type, so a tuple
is not a list and ``1`` is not ``True``); a payload that cannot be pickled is decoded every time. Each memo is
bounded (entries and key bytes) and starts over when full.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.traces.scopes.content import decode_messages

MAX_ENTRIES = 8192
MAX_KEY_CHARS = 16_384
"""Payloads bigger than this (in text or pickle bytes) are not memoized."""
MAX_TOTAL_CHARS = 32 * 2**20

_decoded: dict[tuple[str, Any], tuple[ChatMessage, ...]] = {}
_fragments: dict[ChatMessage, str] = {}
_total = [0]


def decoded_messages(value: Any, role: str) -> list[ChatMessage]:
    """``content.decode_messages(value, role)``, memoized (a payload that does not decode raises every time)."""
    key = _key(value, role)
    if key is None:
        return decode_messages(value, role)
    found = _decoded.get(key)
    if found is None:
        found = tuple(decode_messages(value, role))
        if len(_decoded) >= MAX_ENTRIES or _total[0] >= MAX_TOTAL_CHARS:
            _decoded.clear()
            _total[0] = 0
        _decoded[key] = found
        _total[0] += len(key[1])
    return list(found)


def messages_json(messages: list[ChatMessage]) -> str:
    """``data.messages.messages_to_json(messages)``, built from each message's memoized JSON (``json.dumps`` of a
    list is its items' JSON joined by ``", "`` in brackets)."""
    parts = []
    for message in messages:
        try:
            text = _fragments.get(message)
        except TypeError:  # a field that cannot be hashed
            parts.append(json.dumps(message.to_dict(), ensure_ascii=False))
            continue
        if text is None:
            text = json.dumps(message.to_dict(), ensure_ascii=False)
            if len(_fragments) >= MAX_ENTRIES:
                _fragments.clear()
            _fragments[message] = text
        parts.append(text)
    return "[" + ", ".join(parts) + "]"


def clear() -> None:
    """Forget everything memoized."""
    _decoded.clear()
    _fragments.clear()
    _total[0] = 0


def _key(value: Any, role: str) -> tuple[str, Any] | None:
    if type(value) is str:
        return (role, value) if len(value) <= MAX_KEY_CHARS else None
    try:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # anything that cannot be pickled is simply not memoized
        return None
    return (role, blob) if len(blob) <= MAX_KEY_CHARS else None
