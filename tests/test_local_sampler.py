"""LocalSampler on tiny random models (fast) and on the embedded SmolLM2 (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.embedded import EMBEDDED_MODELS, gguf_path, resolve_model_path
from eval_pipeline.inference.local import LocalSampler, model_fingerprint

PROMPTS = [
    "hi",
    "The capital of France is Paris. " * 6,
    "two plus two",
    "aaa",
    "Water boils at 100 degrees Celsius at sea level. " * 8,
    "x",
    "dog fox",
    "What colour is the sky?",
    "def add(a, b):",
    "Rome",
    "quick brown",
]
GREEDY = GenerationParams(max_tokens=12)


def user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


def requests_for(prompts: list[str], sample_index: int = 0) -> list[GenerationRequest]:
    return [GenerationRequest(sample_id=f"s{i}", sample_index=sample_index, messages=user(text))
            for i, text in enumerate(prompts)]


def same(a: Completion, b: Completion) -> bool:
    return (a.output, a.finish_reason, a.tokens_in, a.tokens_out) == (b.output, b.finish_reason, b.tokens_in,
                                                                       b.tokens_out)


def test_outputs_come_back_in_request_order(tiny_model_dir: str) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=4)
    requests = requests_for(PROMPTS)
    progress: list[int] = []
    batched = sampler.generate(requests, GREEDY, on_progress=progress.append)
    assert len(batched) == len(requests)
    assert sum(progress) == len(requests) and len(progress) == 3
    tokenizer = sampler.tokenizer
    for request, completion in zip(requests, batched, strict=True):
        expected_in = len(tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True,
                                                        tokenize=True, return_dict=True)["input_ids"])
        assert completion.tokens_in == expected_in
        assert completion.error is None and completion.cost_usd is None and completion.latency_s > 0
        alone = sampler.generate([request], GREEDY)[0]
        assert same(alone, completion)


def test_batch_of_one_and_batch_of_eight_agree(tiny_model_dir: str, tiny_eos_model_dir: str) -> None:
    for model_dir in (tiny_model_dir, tiny_eos_model_dir):
        requests = requests_for(PROMPTS)
        one = LocalSampler(model_dir, batch_size=1).generate(requests, GREEDY)
        eight = LocalSampler(model_dir, batch_size=8).generate(requests, GREEDY)
        assert all(same(a, b) for a, b in zip(one, eight, strict=True))


def test_left_padding_does_not_change_a_short_prompt(tiny_model_dir: str) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=8)
    short = GenerationRequest("short", 0, user("two plus two"))
    long = GenerationRequest("long", 0, user("A quick brown fox jumps over the lazy dog. " * 10))
    alone = sampler.generate([short], GREEDY)[0]
    together = sampler.generate([long, short], GREEDY)
    assert together[1].tokens_in is not None and together[0].tokens_in is not None
    assert together[0].tokens_in > 5 * together[1].tokens_in
    assert same(alone, together[1])


def test_max_tokens_and_eos_accounting(tiny_eos_model_dir: str) -> None:
    params = GenerationParams(max_tokens=10)
    sampler = LocalSampler(tiny_eos_model_dir, batch_size=8)
    completions = sampler.generate(requests_for(PROMPTS), params)
    reasons = {completion.finish_reason for completion in completions}
    assert reasons == {"stop", "length"}, "the EOS-biased tiny model should both stop early and run out"
    for completion in completions:
        assert completion.tokens_out is not None and 1 <= completion.tokens_out <= params.max_tokens
        if completion.finish_reason == "length":
            assert completion.tokens_out == params.max_tokens
    # EOS counts as an output token, the padding after it does not: same counts as one request at a time.
    alone = [sampler.generate([request], params)[0] for request in requests_for(PROMPTS)]
    assert [c.tokens_out for c in alone] == [c.tokens_out for c in completions]


def test_max_tokens_respected_without_eos(tiny_model_dir: str) -> None:
    for max_tokens in (1, 5):
        completions = LocalSampler(tiny_model_dir).generate(requests_for(PROMPTS[:3]),
                                                            GenerationParams(max_tokens=max_tokens))
        assert all(c.tokens_out is not None and c.tokens_out <= max_tokens for c in completions)


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny_model_dir: str) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=4)
    requests = requests_for(PROMPTS[:6])

    def outputs(seed: int) -> list[str | None]:
        params = GenerationParams(max_tokens=12, temperature=1.0, top_p=0.95, seed=seed)
        return [completion.output for completion in sampler.generate(requests, params)]

    assert outputs(1) == outputs(1)
    assert outputs(1) != outputs(2)


def test_sampling_from_many_threads_gives_what_each_request_gives_alone(tiny_model_dir: str) -> None:
    """Concurrent rollouts call the sampler from several threads: each sampled answer must be the one its own
    seed gives (the process-wide torch seed is not shared between two threads' draws)."""
    from concurrent.futures import ThreadPoolExecutor

    sampler = LocalSampler(tiny_model_dir, batch_size=1)
    params = GenerationParams(max_tokens=24, temperature=1.0, seed=5)
    requests = requests_for(PROMPTS[:8])
    alone = [sampler.generate([request], params)[0].output for request in requests]
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            together = list(pool.map(lambda r: sampler.generate([r], params)[0].output, requests))
        assert together == alone


def test_sample_indices_are_batched_and_seeded_separately(tiny_model_dir: str) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=8)
    params = GenerationParams(max_tokens=12, temperature=1.0, seed=3)
    first, second = requests_for(PROMPTS[:4], sample_index=0), requests_for(PROMPTS[:4], sample_index=1)
    mixed = sampler.generate([r for pair in zip(first, second, strict=True) for r in pair], params)
    assert [c.output for c in mixed[0::2]] == [c.output for c in sampler.generate(first, params)]
    assert [c.output for c in mixed[1::2]] == [c.output for c in sampler.generate(second, params)]
    assert [c.output for c in mixed[0::2]] != [c.output for c in mixed[1::2]]
    greedy = sampler.generate([first[0], second[0]], GREEDY)
    assert greedy[0].output == greedy[1].output


def test_chat_template_path(tiny_model_dir: str) -> None:
    sampler = LocalSampler(tiny_model_dir)
    messages = ({"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "two plus two"})
    completion = sampler.generate([GenerationRequest("s", 0, messages)], GREEDY)[0]
    text = sampler.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    assert text == "<|bos|><|system|>Answer briefly.<|eos|><|user|>two plus two<|eos|><|assistant|>"
    assert completion.tokens_in == len(sampler.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert completion.output is not None and completion.finish_reason == "length"


def test_plain_text_path_without_chat_template(tiny_model_no_template_dir: str) -> None:
    sampler = LocalSampler(tiny_model_no_template_dir)
    assert not sampler.tokenizer.chat_template
    messages = ({"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "two plus two"})
    completion = sampler.generate([GenerationRequest("s", 0, messages)], GREEDY)[0]
    ids = sampler.tokenizer("Answer briefly.\n\ntwo plus two")["input_ids"]
    assert ids[0] == sampler.tokenizer.bos_token_id
    assert completion.error is None and completion.tokens_in == len(ids)


def test_identity_is_stable_and_excludes_batch_size_and_device(tiny_model_dir: str,
                                                               tiny_eos_model_dir: str) -> None:
    a = LocalSampler(tiny_model_dir, batch_size=1, device="cpu", dtype="float32").identity()
    b = LocalSampler(tiny_model_dir, batch_size=16, device="cuda", dtype="float32").identity()
    assert a == b  # the weights' dtype is in the identity (bfloat16 answers differently), the device is not
    assert set(a) == {"backend", "model", "fingerprint", "dtype"}
    assert a["backend"] == "local" and a["model"] == tiny_model_dir
    # Same architecture and file sizes, different weights: a different fingerprint.
    assert LocalSampler(tiny_eos_model_dir).identity()["fingerprint"] != a["fingerprint"]
    assert model_fingerprint(tiny_model_dir) == a["fingerprint"]


def test_identity_independent_of_the_folder(tiny_model_dir: str, tmp_path: Path) -> None:
    from tests.tiny_model import build_tiny_model

    rebuilt = build_tiny_model(tmp_path / "again")
    assert model_fingerprint(rebuilt) == model_fingerprint(tiny_model_dir)


def test_loaded_model_is_shared_within_the_process(tiny_model_dir: str) -> None:
    a, b = LocalSampler(tiny_model_dir, batch_size=2), LocalSampler(tiny_model_dir, batch_size=8)
    assert a.model is b.model and a.tokenizer is b.tokenizer
    assert a.tokenizer.padding_side == "left" and a.tokenizer.pad_token_id is not None
    assert a.device == "cpu" and a.dtype == "float32"
    assert a.count_tokens("two plus two") > 0


def test_a_bad_request_fails_alone(tiny_model_dir: str) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=8)
    requests = requests_for(PROMPTS[:4])
    bad_role = GenerationRequest("bad", 0, ({"role": "robot", "content": "beep"},))
    too_long = GenerationRequest("long", 0, user("The capital of France is Paris. " * 200))
    mixed = sampler.generate([requests[0], bad_role, requests[1], too_long, requests[2], requests[3]], GREEDY)
    assert mixed[1].output is None and mixed[1].finish_reason == "error"
    assert mixed[1].error is not None and "unsupported role: robot" in mixed[1].error
    assert mixed[3].output is None and mixed[3].error is not None and "context" in mixed[3].error
    clean = sampler.generate(requests, GREEDY)
    assert all(same(a, b) for a, b in zip([mixed[0], mixed[2], mixed[4], mixed[5]], clean, strict=True))


def test_a_failing_batch_becomes_error_rows(tiny_model_dir: str) -> None:
    sampler = LocalSampler(tiny_model_dir, batch_size=2)
    progress: list[int] = []
    # transformers refuses a negative top_p inside generate(): every batch fails, nothing raises.
    params = GenerationParams(max_tokens=4, temperature=1.0, top_p=-0.5)
    completions = sampler.generate(requests_for(PROMPTS[:5]), params, on_progress=progress.append)
    assert len(completions) == 5 and sum(progress) == 5
    for completion in completions:
        assert completion.output is None and completion.finish_reason == "error"
        assert completion.error is not None and "top_p" in completion.error


def test_empty_request_list(tiny_model_dir: str) -> None:
    assert LocalSampler(tiny_model_dir).generate([], GREEDY) == []


def test_resolve_model_path_passes_folders_and_hub_ids_through(tiny_model_dir: str) -> None:
    assert resolve_model_path(tiny_model_dir) == tiny_model_dir
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "smollm2-135m-instruct" in EMBEDDED_MODELS
    assert gguf_path("smollm2-135m-instruct").stat().st_size > 50_000_000


@pytest.mark.slow
def test_embedded_model_answers_a_simple_question(embedded_model_dir: str) -> None:
    assert (Path(embedded_model_dir) / "model.safetensors").is_file()
    sampler = LocalSampler(embedded_model_dir, batch_size=2)
    requests = [GenerationRequest("q", 0, user("What is the capital of France?")),
                GenerationRequest("q2", 0, user("Say hello."))]
    completions = sampler.generate(requests, GenerationParams(max_tokens=32))
    answer = completions[0]
    assert answer.error is None and answer.output is not None
    assert "Paris" in answer.output
    assert answer.finish_reason == "stop" and answer.tokens_out is not None and answer.tokens_out < 32
    assert completions[1].output


def test_stop_strings_end_generation_and_are_cut(tiny_model_dir: str) -> None:
    from eval_pipeline.inference.local import cut_at_stop

    assert cut_at_stop("Paris.\nQuestion: next", ("\nQuestion:",)) == ("Paris.", True)
    assert cut_at_stop("no stop here ", ("###",)) == ("no stop here", False)
    sampler = LocalSampler(tiny_model_dir)
    request = GenerationRequest("s", 0, ({"role": "user", "content": "hello there"},))
    [free] = sampler.generate([request], GenerationParams(max_tokens=12))
    assert free.output and len(free.output) > 2
    stop = free.output[1:3]
    [stopped] = sampler.generate([request], GenerationParams(max_tokens=12, stop=(stop,)))
    assert stopped.output == free.output[:free.output.find(stop)].strip()
    assert stopped.finish_reason == "stop"
