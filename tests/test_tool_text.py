"""The local sampler's tools: the ``<tool_call>`` parser (pure), the text protocol, and chat templates that read
``tools``, on tiny models built on the spot (no downloads)."""

from __future__ import annotations

import json

import pytest

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, assistant, tool_result
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.inference.tool_text import (
    parse_tool_calls,
    protocol_messages,
    render_prompt,
    request_seed,
    template_supports_tools,
)

WEATHER = ToolSpec("get_weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}})
WEATHER_JSON = ('{"name": "get_weather", "description": "The weather in a city.", "parameters": {"type": "object", '
                '"properties": {"city": {"type": "string"}}}}')
CALL = ToolCall("c1", "get_weather", '{"city": "Oslo"}')
CONVERSATION = (ChatMessage("system", "Use tools."), ChatMessage("user", "Weather in Oslo?"),
                assistant("Let me look.", [CALL]), tool_result(CALL, "no station", is_error=True),
                tool_result(ToolCall("c2", "get_weather"), "sunny"))
GREEDY = GenerationParams(max_tokens=4)

# A template that reads tools and renders tool calls and results (as Qwen/Hermes-style templates do).
TOOL_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}{{ '<|system|>TOOLS ' }}{% for tool in tools %}{{ tool['function']['name'] }};{% endfor %}"
    "{{ eos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'tool' %}{{ '<|user|>RESULT ' + message['tool_call_id'] + ' ' + message['content'] }}"
    "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] }}"
    "{% for call in message.get('tool_calls', []) %}{{ '<tool_call>' + call['function']['name'] + ' ' }}"
    "{{ call['function']['arguments']['city'] }}{{ '</tool_call>' }}{% endfor %}{% endif %}{{ eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tool_template_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import AutoTokenizer

    from tests.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-tools"), max_positions=2048)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = TOOL_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def long_context_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model with room for the protocol's tool description (its small vocabulary spends many tokens)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-long"), max_positions=2048)


# -- the parser ----------------------------------------------------------------------------------------------

def test_one_valid_call_is_taken_out_of_the_text() -> None:
    text, calls = parse_tool_calls('Checking.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}'
                                   "</tool_call>", "seed")
    assert text == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert calls[0].id.startswith("call_") and len(calls[0].id) == len("call_") + 16


def test_several_calls_in_order_with_distinct_deterministic_ids() -> None:
    answer = ('<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call> and '
              '<tool_call>\n{"name": "b", "arguments": "{\\"y\\": 2}"}\n</tool_call>')
    text, calls = parse_tool_calls(answer, "seed")
    assert text == "and"
    assert [(c.name, c.arguments) for c in calls] == [("a", '{"x": 1}'), ("b", '{"y": 2}')]
    assert len({c.id for c in calls}) == 2
    assert parse_tool_calls(answer, "seed")[1] == calls  # a re-run gives the same ids
    assert [c.id for c in parse_tool_calls(answer, "other request")[1]] != [c.id for c in calls]


@pytest.mark.parametrize("block", [
    '<tool_call>{"name": "a", "arguments": {"x": 1}</tool_call>',  # invalid JSON
    "<tool_call>[1, 2]</tool_call>",  # not an object
    '<tool_call>{"arguments": {}}</tool_call>',  # no name
    '<tool_call>{"name": "a", "arguments": 3}</tool_call>',  # arguments neither object nor text
    '<tool_call>{"name": "a", "arguments": {}}',  # never closed (cut by max_tokens)
])
def test_a_bad_block_stays_in_the_text_and_makes_no_call(block: str) -> None:
    answer = f"Hmm. {block}"
    assert parse_tool_calls(answer, "seed") == (answer, ())


def test_a_bad_block_beside_a_good_one_stays() -> None:
    bad = "<tool_call>{oops}</tool_call>"
    text, calls = parse_tool_calls(f'{bad} <tool_call>{{"name": "a"}}</tool_call>', "seed")
    assert text == bad and [(c.name, c.arguments) for c in calls] == [("a", "{}")]


# -- the text protocol -----------------------------------------------------------------------------------

def test_protocol_messages_describe_the_tools_and_render_calls_and_results() -> None:
    rendered = protocol_messages(CONVERSATION, (WEATHER,))
    assert [m["role"] for m in rendered] == ["system", "user", "assistant", "user"]
    system = rendered[0]["content"]
    assert system.startswith("Use tools.\n\nYou can call these tools (one JSON description a line):\n")
    assert WEATHER_JSON in system.splitlines()
    assert '<tool_call>{"name": "<tool name>", "arguments": {<the arguments as a JSON object>}}</tool_call>' in system
    assert rendered[2]["content"] == ('Let me look.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}'
                                      "</tool_call>")
    assert rendered[3]["content"] == ('<tool_result id="c1" name="get_weather" error="true">no station</tool_result>\n'
                                      '<tool_result id="c2" name="get_weather">sunny</tool_result>')
    plain = (ChatMessage("user", "hi"),)
    assert protocol_messages(plain, ()) == [{"role": "user", "content": "hi"}]
    assert protocol_messages(plain, (WEATHER,))[0]["role"] == "system"  # a system turn is added for the tools


def test_plain_requests_render_as_before(tiny_model_dir: str, tiny_model_no_template_dir: str) -> None:
    messages = (ChatMessage("system", "Answer briefly."), ChatMessage("user", "two plus two"))
    templated = LocalSampler(tiny_model_dir).tokenizer
    assert not template_supports_tools(templated)
    as_dicts = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "two plus two"}]
    expected = templated.apply_chat_template(as_dicts, tokenize=False, add_generation_prompt=True)
    assert render_prompt(templated, messages) == (expected, False)
    plain = LocalSampler(tiny_model_no_template_dir).tokenizer
    assert render_prompt(plain, messages) == ("Answer briefly.\n\ntwo plus two", True)


def test_local_sampler_sends_tools_through_the_text_protocol(long_context_model_dir: str) -> None:
    sampler = LocalSampler(long_context_model_dir)
    text, add_special = render_prompt(sampler.tokenizer, CONVERSATION, (WEATHER,))
    assert not add_special
    assert text.startswith("<|bos|><|system|>Use tools.\n\nYou can call these tools")
    assert text.endswith('<|user|><tool_result id="c1" name="get_weather" error="true">no station</tool_result>\n'
                         '<tool_result id="c2" name="get_weather">sunny</tool_result><|eos|><|assistant|>')
    [completion] = sampler.generate([GenerationRequest("s", 0, CONVERSATION, tools=(WEATHER,))], GREEDY)
    assert completion.error is None
    assert completion.tokens_in == len(sampler.tokenizer(text, add_special_tokens=False)["input_ids"])
    [without] = sampler.generate([GenerationRequest("s", 0, CONVERSATION[:2])], GREEDY)
    assert without.tokens_in is not None and completion.tokens_in > without.tokens_in


def test_local_sampler_without_a_template_puts_the_protocol_in_the_text(tiny_model_no_template_dir: str) -> None:
    sampler = LocalSampler(tiny_model_no_template_dir)
    text, add_special = render_prompt(sampler.tokenizer, CONVERSATION[1:2], (WEATHER,))
    assert add_special and text.startswith("You can call these tools") and text.endswith("\n\nWeather in Oslo?")
    [completion] = sampler.generate([GenerationRequest("s", 0, CONVERSATION[1:2], tools=(WEATHER,))], GREEDY)
    assert completion.tokens_in == len(sampler.tokenizer(text)["input_ids"])


def test_a_template_that_reads_tools_gets_them_natively(tool_template_model_dir: str) -> None:
    sampler = LocalSampler(tool_template_model_dir)
    assert template_supports_tools(sampler.tokenizer)
    text, add_special = render_prompt(sampler.tokenizer, CONVERSATION, (WEATHER,))
    assert (text, add_special) == (
        "<|bos|><|system|>TOOLS get_weather;<|eos|><|system|>Use tools.<|eos|><|user|>Weather in Oslo?<|eos|>"
        "<|assistant|>Let me look.<tool_call>get_weather Oslo</tool_call><|eos|>"
        "<|user|>RESULT c1 no station<|eos|><|user|>RESULT c2 sunny<|eos|><|assistant|>", False)
    [completion] = sampler.generate([GenerationRequest("s", 0, CONVERSATION, tools=(WEATHER,))], GREEDY)
    assert completion.tokens_in == len(sampler.tokenizer(text, add_special_tokens=False)["input_ids"])


class _Scripted(LocalSampler):
    """The tiny model's tokenizer and batching, with the generated text replaced by a script (a random tiny model
    never writes a tool call)."""

    answer = ('Looking.<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
              "<tool_call>{broken</tool_call>")

    def _generate_batch(self, prompts: list[list[int]], params: GenerationParams, seed: int) -> list[Completion]:
        return [Completion(output=self.answer, finish_reason="stop", tokens_in=len(ids), tokens_out=9)
                for ids in prompts]


def test_the_local_sampler_parses_tool_calls_only_when_tools_are_offered(tiny_model_dir: str) -> None:
    sampler = _Scripted(tiny_model_dir)
    offered = GenerationRequest("s", 0, CONVERSATION[:2], tools=(WEATHER,))
    [completion] = sampler.generate([offered], GREEDY)
    assert completion.output == "Looking.<tool_call>{broken</tool_call>"
    assert completion.finish_reason == "tool_calls"
    seed = request_seed("s", 0, offered.messages)
    assert completion.tool_calls == parse_tool_calls(_Scripted.answer, seed)[1]
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [("get_weather", '{"city": "Oslo"}')]
    assert sampler.generate([offered], GREEDY)[0].tool_calls == completion.tool_calls
    [other_index] = sampler.generate([GenerationRequest("s", 1, CONVERSATION[:2], tools=(WEATHER,))], GREEDY)
    assert other_index.tool_calls[0].id != completion.tool_calls[0].id
    [plain] = sampler.generate([GenerationRequest("s", 0, CONVERSATION[:2])], GREEDY)
    assert plain.output == _Scripted.answer and plain.tool_calls == () and plain.finish_reason == "stop"


def test_the_scripted_sampler_is_the_real_one_elsewhere(tiny_model_dir: str) -> None:
    assert _Scripted(tiny_model_dir).identity() == LocalSampler(tiny_model_dir).identity()
