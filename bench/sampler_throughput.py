"""Throughput of LocalSampler against a plain hand-written transformers loop, and batch 8 against batch 1.

Usage: python bench/sampler_throughput.py [--model NAME_OR_PATH] [--quick]

Runs are alternated (LocalSampler batch B, plain loop batch B, LocalSampler batch 1) and repeated; the best
of each is kept. Tokens are the generated tokens up to and including EOS, counted the same way for both.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.local import LocalSampler

QUESTIONS = [
    "What is the capital of France?",
    "What is 2 + 2?",
    "Name a primary colour.",
    "What is the largest planet in the solar system?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?",
    "How many legs does a spider have?",
    "What is the chemical symbol for gold?",
    "What is the capital of Japan?",
    "How many days are in a week?",
    "What gas do plants absorb from the air?",
    "What is the square root of 81?",
    "Which ocean is the largest?",
    "What language is spoken in Brazil?",
    "What is the freezing point of water in Fahrenheit?",
    "Who painted the Mona Lisa?",
    "What is the capital of Italy?",
    "How many continents are there?",
    "What is the fastest land animal?",
    "What is 10 times 12?",
    "What is the opposite of hot?",
    "Which planet is known as the Red Planet?",
    "What is the capital of Germany?",
    "How many hours are in a day?",
    "What do bees make?",
    "What is the tallest mountain on Earth?",
    "What is H2O commonly called?",
    "What is the capital of Spain?",
    "How many sides does a triangle have?",
    "What is the main ingredient of bread?",
    "Which animal is known as the king of the jungle?",
    "What is the currency of the United Kingdom?",
]


def plain_loop(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], batch_size: int,
               max_tokens: int) -> int:
    """A hand-written batched greedy loop; returns generated tokens (up to and including EOS)."""
    import torch

    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    total = 0
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                 for messages in prompts[start:start + batch_size]]
        encoded = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            output = model.generate(**encoded, max_new_tokens=max_tokens, do_sample=False, temperature=None,
                                    top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
                                    eos_token_id=sorted(eos_ids))
        for row in output[:, encoded["input_ids"].shape[1]:].tolist():
            stop = next((i for i, token in enumerate(row) if token in eos_ids), None)
            total += len(row) if stop is None else stop + 1
    return total


def timed(run: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    tokens = run()
    return time.perf_counter() - started, tokens


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name, folder or HF id")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true", help="8 prompts, 16 tokens, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.max_tokens, args.repeats = 8, 16, 1

    from transformers import AutoTokenizer

    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.prompts)]
    requests = [GenerationRequest(f"q{i}", 0, ({"role": "user", "content": q},)) for i, q in enumerate(questions)]
    params = GenerationParams(max_tokens=args.max_tokens)
    batched = LocalSampler(args.model, batch_size=args.batch_size, device=args.device)
    single = LocalSampler(args.model, batch_size=1, device=args.device)
    model = batched.model  # loaded once, shared by all three
    tokenizer = AutoTokenizer.from_pretrained(batched.model_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plain_prompts = [list(request.messages) for request in requests]
    print(f"model {args.model} on {batched.device} ({batched.dtype}), {args.prompts} prompts, "
          f"max_tokens {args.max_tokens}, greedy, best of {args.repeats}")

    def sampler_run(sampler: LocalSampler) -> Callable[[], int]:
        def run() -> int:
            completions = sampler.generate(requests, params)
            failed = [c.error for c in completions if c.error]
            if failed:
                raise RuntimeError(f"{len(failed)} failed: {failed[0]}")
            return sum(c.tokens_out or 0 for c in completions)
        return run

    runs: dict[str, Callable[[], int]] = {
        f"local batch {args.batch_size}": sampler_run(batched),
        f"plain batch {args.batch_size}": lambda: plain_loop(model, tokenizer, plain_prompts, args.batch_size,
                                                             args.max_tokens),
        "local batch 1": sampler_run(single),
    }
    batched.generate(requests[:2], GenerationParams(max_tokens=4))  # warm-up
    best: dict[str, tuple[float, int]] = {}
    print(f"{'run':<16} {'repeat':>6} {'seconds':>8} {'tokens':>7} {'tok/s':>8}")
    for repeat in range(args.repeats):
        for name, run in runs.items():
            seconds, tokens = timed(run)
            print(f"{name:<16} {repeat + 1:>6} {seconds:>8.2f} {tokens:>7} {tokens / seconds:>8.1f}", flush=True)
            if name not in best or tokens / seconds > best[name][1] / best[name][0]:
                best[name] = (seconds, tokens)
    rate = {name: tokens / seconds for name, (seconds, tokens) in best.items()}
    print("best:", ", ".join(f"{name} {value:.1f} tok/s" for name, value in rate.items()))
    local, plain, one = rate[f"local batch {args.batch_size}"], rate[f"plain batch {args.batch_size}"], \
        rate["local batch 1"]
    print(f"ratio local/plain: {local / plain:.2f} (goal >= 0.9)")
    print(f"batch{args.batch_size}/batch1: {local / one:.1f}x")


if __name__ == "__main__":
    main()
