"""Log-likelihood scoring throughput of LocalLikelihoodScorer against a plain hand-written transformers loop.

Usage: python bench/loglikelihood_throughput.py [--embedded | --model NAME_OR_PATH] [--quick]

Both score the same multiple-choice style requests (contexts of mixed lengths, several continuations each) with
the same batch size and the same padding (longest first, right-padded, one forward pass per batch); the plain loop
is the simplest correct one (full log-softmax, gather). Tokens are the non-padding input tokens of the forward
passes, counted the same way for both. Runs alternate and repeat; the best of each is kept. Without --model or
--embedded a tiny random Llama is built on the fly, as the tests do (a wider one than theirs, ~1M parameters).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval_pipeline.inference.likelihood import LoglikelihoodRequest
from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
from eval_pipeline.inference.local import LocalSampler, _pad_token_id

REPO = Path(__file__).resolve().parent.parent

PASSAGES = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Two plus two is four. Three times three is nine.",
    "Question: what colour is the sky? Answer: blue.",
    "A quick brown fox jumps over the lazy dog.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Evaluation pipelines measure models on suites of samples.",
]
CHOICES = [" Paris", " Rome", " blue", " four", " the lazy dog", " at sea level", " nine", " Celsius"]


def bench_requests(n_questions: int, n_choices: int) -> list[LoglikelihoodRequest]:
    """Contexts of 1 to 8 passages, each with ``n_choices`` continuations."""
    requests = []
    for question in range(n_questions):
        passages = [PASSAGES[(question + k) % len(PASSAGES)] for k in range(1 + question % 8)]
        context = " ".join(passages) + " Answer:"
        requests += [LoglikelihoodRequest(context, CHOICES[(question + c) % len(CHOICES)]) for c in range(n_choices)]
    return requests


def plain_loop(model: Any, tokenizer: Any, requests: list[LoglikelihoodRequest], batch_size: int,
               max_length: int, pad_id: int) -> tuple[int, list[float]]:
    """The simplest correct batched loop; returns (input tokens, log-likelihoods in request order)."""
    import torch

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    items = []
    for request in requests:
        context = request.context.rstrip()
        continuation = request.context[len(context):] + request.continuation
        context_ids = encode(context)
        targets = encode(context + continuation)[len(context_ids):]
        items.append(((context_ids + targets)[-(max_length + 1):][:-1], targets))
    order = sorted(range(len(items)), key=lambda i: (-len(items[i][0]), i))
    results = [0.0] * len(items)
    tokens = 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            width = len(items[batch[0]][0])
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            for row, index in enumerate(batch):
                ids[row, :len(items[index][0])] = torch.tensor(items[index][0])
            logprobs = torch.log_softmax(model(input_ids=ids.to(model.device)).logits.float(), dim=-1)
            for row, index in enumerate(batch):
                inputs, targets = items[index]
                positions = torch.arange(len(inputs) - len(targets), len(inputs), device=logprobs.device)
                wanted = torch.tensor(targets, device=logprobs.device)
                results[index] = float(logprobs[row, positions, wanted].sum())
                tokens += len(inputs)
    return tokens, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="embedded name, folder or HF id (default: a tiny model)")
    parser.add_argument("--embedded", action="store_true", help="the embedded smollm2-135m-instruct")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--choices", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true", help="16 questions, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.questions, args.repeats = 16, 1

    model_name = "smollm2-135m-instruct" if args.embedded else args.model
    if model_name is None:
        sys.path.insert(0, str(REPO))
        from tests.tiny_model import build_tiny_model

        model_name = build_tiny_model(Path(tempfile.mkdtemp(prefix="tiny-ll-")), hidden_size=128, vocab_size=400)
    sampler = LocalSampler(model_name, device=args.device)
    scorer = LocalLikelihoodScorer(sampler, batch_size=args.batch_size)
    model, tokenizer = sampler.model, sampler.tokenizer
    pad_id = _pad_token_id(tokenizer, model)
    requests = bench_requests(args.questions, args.choices)
    print(f"model {args.model or ('smollm2-135m-instruct' if args.embedded else 'tiny (built)')} on "
          f"{sampler.device} ({sampler.dtype}), {len(requests)} requests, batch {args.batch_size}, "
          f"best of {args.repeats}")

    def scorer_run() -> tuple[int, list[float]]:
        scores = scorer.loglikelihood(requests)
        return 0, [score.logprob for score in scores]

    tokens, reference = plain_loop(model, tokenizer, requests, args.batch_size, scorer.max_length, pad_id)
    _, ours = scorer_run()
    worst = max(abs(a - b) for a, b in zip(ours, reference, strict=True))
    print(f"input tokens per pass: {tokens}; largest |scorer - plain| log-likelihood difference: {worst:.2e}")

    runs: dict[str, Callable[[], Any]] = {
        "scorer": scorer_run,
        "plain": lambda: plain_loop(model, tokenizer, requests, args.batch_size, scorer.max_length, pad_id),
    }
    best: dict[str, float] = {}
    print(f"{'run':<8} {'repeat':>6} {'seconds':>8} {'tok/s':>10}")
    for repeat in range(args.repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds = time.perf_counter() - started
            print(f"{name:<8} {repeat + 1:>6} {seconds:>8.3f} {tokens / seconds:>10.0f}", flush=True)
            best[name] = max(best.get(name, 0.0), tokens / seconds)
    print(f"best: scorer {best['scorer']:.0f} tok/s, plain {best['plain']:.0f} tok/s")
    print(f"ratio scorer/plain: {best['scorer'] / best['plain']:.2f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
