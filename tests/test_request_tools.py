"""Typed requests: messages and tools on GenerationRequest, tools in the cache key, tool calls in the cache."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, assistant, tool_result
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import (
    Completion,
    GenerationParams,
    GenerationRequest,
    refuse_tools,
    request_messages,
)
from eval_pipeline.inference.cache import RequestCache, request_fields, request_hash

IDENTITY = {"backend": "bedrock", "model": "amazon.nova-micro-v1:0"}
PARAMS = GenerationParams(max_tokens=32, seed=3)
PLAIN = ({"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 2 plus 2?"})
WEATHER = ToolSpec("get_weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CLOCK = ToolSpec("get_time", "The time in a city.", {"type": "object", "properties": {"city": {"type": "string"}}})

# request_hash of (IDENTITY, PARAMS, PLAIN, sample_index 1) computed by the code before messages were typed.
KEY_BEFORE_TYPED_MESSAGES = "02aa443ae36d9cc1a0971b96f9c13520d6b900f2f94da98b26962ed12332ad4d"


def old_way(messages: list[dict[str, str]], sample_index: int) -> str:
    """The key as it was computed when messages were plain dicts (written out independently)."""
    payload = {"sampler": IDENTITY, "params": asdict(PARAMS), "messages": messages, "sample_index": sample_index}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def test_dict_messages_and_tools_are_read_into_typed_objects() -> None:
    request = GenerationRequest("s", 0, PLAIN, tools=({"type": "function", "function": WEATHER.to_dict()},))
    assert request.messages == (ChatMessage("system", "be brief"), ChatMessage("user", "What is 2 plus 2?"))
    assert request.tools == (WEATHER,)
    typed = GenerationRequest("s", 0, request.messages, tools=(WEATHER,))
    assert typed == request


def test_request_messages_are_chat_messages_with_the_system_prompt_first() -> None:
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "",
                    "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}]},
                    {"role": "tool", "content": "rain", "tool_call_id": "c1", "name": "get_weather"}]
    messages = request_messages(json.dumps(conversation), "messages", "be brief")
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2].tool_calls == (ToolCall("c1", "get_weather", "{\"city\": \"Oslo\"}"),)
    assert messages[3].tool_call_id == "c1" and messages[3].content == "rain"
    assert request_messages("hello", "text") == (ChatMessage("user", "hello"),)


def test_a_plain_request_keeps_the_key_it_had_before_messages_were_typed() -> None:
    request = GenerationRequest("s", 1, PLAIN)
    key = request_hash(IDENTITY, PARAMS, request)
    assert key == KEY_BEFORE_TYPED_MESSAGES == old_way(list(PLAIN), 1)
    assert request_hash(IDENTITY, PARAMS, GenerationRequest("s", 1, request.messages, tools=())) == key


def test_the_key_covers_the_tools_offered() -> None:
    base = GenerationRequest("s", 0, PLAIN)
    weather = GenerationRequest("s", 0, PLAIN, tools=(WEATHER,))
    both = GenerationRequest("s", 0, PLAIN, tools=(WEATHER, CLOCK))
    other_schema = GenerationRequest("s", 0, PLAIN, tools=(ToolSpec("get_weather", WEATHER.description),))
    keys = [request_hash(IDENTITY, PARAMS, r) for r in (base, weather, both, other_schema)]
    assert len(set(keys)) == 4
    expected = {"sampler": IDENTITY, "params": asdict(PARAMS), "messages": list(PLAIN), "sample_index": 0,
                "tools": [{"name": "get_weather", "description": "The weather in a city.",
                           "parameters": dict(WEATHER.parameters)}]}
    assert keys[1] == hashlib.sha256(json.dumps(expected, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def test_the_key_covers_tool_calls_and_results_in_the_conversation() -> None:
    call = ToolCall("c1", "get_weather", '{"city": "Oslo"}')
    turns = (ChatMessage("user", "weather?"), assistant("", [call]))
    ok = GenerationRequest("s", 0, (*turns, tool_result(call, "rain")), tools=(WEATHER,))
    failed = GenerationRequest("s", 0, (*turns, tool_result(call, "rain", is_error=True)), tools=(WEATHER,))
    assert request_hash(IDENTITY, PARAMS, ok) != request_hash(IDENTITY, PARAMS, failed)


def test_tools_cannot_be_declared_as_a_request_field() -> None:
    class Odd:
        request_fields = ("tools",)

    with pytest.raises(TypeError, match="tools"):
        request_fields(Odd())


def test_the_cache_stores_and_restores_tool_calls(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "cache.sqlite")
    calls = (ToolCall("c1", "get_weather", '{"city": "Oslo"}'), ToolCall("c2", "get_time", "not json"))
    made = Completion(output="", finish_reason="tool_calls", tokens_in=5, tokens_out=7, tool_calls=calls)
    plain = Completion(output="4", finish_reason="stop")
    assert cache.put_many([("k1", made), ("k2", plain)]) == 2
    again = RequestCache(tmp_path / "cache.sqlite").get_many(["k1", "k2"])
    assert again["k1"] == made and again["k1"].tool_calls == calls
    assert again["k2"] == plain and again["k2"].tool_calls == ()
    rows = dict(sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT key, value FROM completions"))
    assert "tool_calls" not in json.loads(rows["k2"])  # a plain completion is stored as before
    assert json.loads(rows["k1"])["tool_calls"][1] == {"id": "c2", "name": "get_time", "arguments": "not json"}


def test_a_row_written_before_completions_had_tool_calls_still_reads(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "cache.sqlite")
    old = {"output": "4", "finish_reason": "stop", "tokens_in": 3, "tokens_out": 1, "latency_s": 0.5,
           "cost_usd": None, "error": None}
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        db.execute("INSERT INTO completions VALUES (?, ?)", ("old", json.dumps(old)))
    assert cache.get_many(["old"])["old"] == Completion(**old)


def test_refuse_tools_names_the_backend() -> None:
    refuse_tools([GenerationRequest("s", 0, PLAIN)], "precomputed")  # no tools: nothing to refuse
    with pytest.raises(EvalInputError, match=r"'precomputed'.*get_weather") as caught:
        refuse_tools([GenerationRequest("s", 0, PLAIN), GenerationRequest("t", 0, PLAIN, tools=(WEATHER,))],
                     "precomputed")
    assert caught.value.field == "tools"


def test_a_messages_dataset_keeps_tool_calls_and_results(tmp_path: Path) -> None:
    from eval_pipeline.data.formats import load_samples

    conversation = [{"role": "user", "content": "weather in Oslo?"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                    {"role": "tool", "content": "rain", "tool_call_id": "c1"},
                    {"role": "user", "content": "and tomorrow?"}]
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "x", "messages": conversation}) + "\n"
                    + json.dumps({"id": "y", "messages": [{"role": "user", "content": "plain"}]}) + "\n")
    frame = load_samples(str(path))
    messages = request_messages(frame.loc[0, "input"], "messages")
    assert messages[1].tool_calls == (ToolCall("c1", "get_weather", '{"city": "Oslo"}'),)
    assert messages[2].tool_call_id == "c1" and messages[3].content == "and tomorrow?"
    assert frame.loc[1, "input"] == '[{"role": "user", "content": "plain"}]'  # plain inputs as before
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                            {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}]})
                   + "\n")
    with pytest.raises(EvalInputError, match=r"bad.jsonl:1: field 'messages\[1\]'"):
        load_samples(str(bad))
