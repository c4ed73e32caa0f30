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
from eval_pipeline.traces.scopes.content import clear_text_memo, decode_messages, is_container

MAX_ENTRIES = 8192
MAX_KEY_CHARS = 16_384
"""Payloads bigger than this (in text or pickle bytes) are not memoized."""
MAX_TOTAL_CHARS = 32 * 2**20
"""Each memo starts over when the text it holds passes this."""

_decoded: dict[tuple[str, Any], tuple[tuple[ChatMessage, ...], bool | None]] = {}
_fragments: dict[int, tuple[ChatMessage, str]] = {}
_total = [0]
_fragment_total = [0]


def decoded_payload(value: Any, role: str) -> tuple[tuple[ChatMessage, ...] | list[ChatMessage], bool | None]:
    """``content.decode_messages(value, role)`` and, where it is known, ``content.is_container(value)`` (None
    where it is not), memoized; a payload that does not decode raises every time."""
    key = _key(value, role)
    if key is None:
        return decode_messages(value, role), None
    found = _decoded.get(key)
    if found is None:
        found = (tuple(decode_messages(value, role)), _container(value))
        if len(_decoded) >= MAX_ENTRIES or _total[0] >= MAX_TOTAL_CHARS:
            _decoded.clear()
            _total[0] = 0
        _decoded[key] = found
        _total[0] += len(key[1])
    return found


def decoded_messages(value: Any, role: str) -> list[ChatMessage]:
    """``content.decode_messages(value, role)``, memoized."""
    return list(decoded_payload(value, role)[0])


def messages_json(messages: list[ChatMessage]) -> str:
    """``data.messages.messages_to_json(messages)``, built from each message's memoized JSON (``json.dumps`` of a
    list is its items' JSON joined by ``", "`` in brackets). Messages are found by identity (the memo keeps each
    one alive, so its id is not reused): the decode memo hands out the same message objects again."""
    parts = []
    for message in messages:
        found = _fragments.get(id(message))
        if found is not None and found[0] is message:
            parts.append(found[1])
            continue
        text = json.dumps(message.to_dict(), ensure_ascii=False)
        if len(text) <= MAX_KEY_CHARS:
            if len(_fragments) >= MAX_ENTRIES or _fragment_total[0] >= MAX_TOTAL_CHARS:
                _fragments.clear()
                _fragment_total[0] = 0
            _fragments[id(message)] = (message, text)
            _fragment_total[0] += len(text)
        parts.append(text)
    return "[" + ", ".join(parts) + "]"


def clear() -> None:
    """Forget everything memoized."""
    _decoded.clear()
    _fragments.clear()
    _total[0] = _fragment_total[0] = 0
    clear_text_memo()


def _key(value: Any, role: str) -> tuple[str, Any] | None:
    if type(value) is str:
        return (role, value) if len(value) <= MAX_KEY_CHARS else None
    try:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # anything that cannot be pickled is simply not memoized
        return None
    return (role, blob) if len(blob) <= MAX_KEY_CHARS else None


def _container(value: Any) -> bool | None:
    """``is_container(value)``, or None when it fails (then the caller asks, and fails, where it always did)."""
    try:
        return is_container(value)
    except Exception:
        return None
