"""Log-likelihood scoring (local tiny model, OpenAI completions against the fake) and lm-eval's likelihood metrics,
checked against independent computations: plain per-request forward passes, hand formulas, torch cross-entropy.

The lm-eval agreement tests run on two tokenizers: with a BOS token, and without one (Qwen-style), where lm-eval's
prefix token is EOS: an empty context is EOS and a text's first token is conditioned on EOS, so every token counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference import likelihood_local
from eval_pipeline.inference.likelihood import ContinuationScore, LikelihoodError, LoglikelihoodRequest, TextScore
from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer, rolling_windows
from eval_pipeline.inference.likelihood_openai import (
    OpenAICompletionsScorer,
    continuation_tokens,
    parse_prompt_logprobs,
    prefixed_tokens,
    text_tokens,
)
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.inference.remote import PermanentError, RetryPolicy
from eval_pipeline.metrics.likelihood import (
    bits_per_byte,
    byte_perplexity,
    corpus_perplexity,
    count_words,
    multiple_choice,
    token_perplexity,
    word_perplexity,
)
from tests.fakes.llm_server import FakeLLMServer, fake_tokens, is_fake_argmax, prompt_logprob
from tests.tiny_model import prefix_token

PAIRS = [
    ("The capital of France is ", "Paris"),  # trailing space moves to the continuation
    ("The capital of France is", " Paris"),
    ("The capital of Fra", "nce"),  # the boundary merges: 'a' + 'nce' → 'an' 'ce'
    ("", "Water boils"),  # empty context: conditioned on the prefix token (BOS, else EOS)
    ("Two plus two is", " four. Three times three is nine."),
    ("def add(a, b):\n", "    return a + b"),
    ("Question: what colour is the sky? Answer:", " blue."),
    ("A quick brown fox jumps over the lazy", " dog."),
    ("Evaluation pipelines measure models on suites of samples. " * 3, "Yes"),
    ("x", " y"),
    ("The qu", "ick brown fox"),
    ("Water boils at 100 degrees", " Celsius at sea level."),
]
TEXTS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "x",
    "Question: what colour is the sky? Answer: blue. " * 4,
    "def add(a, b):\n    return a + b\n",
    "héllo wörld ✓",
]
FAST = RetryPolicy(max_attempts=8, base_delay_s=0.001, max_delay_s=0.01)


# -- independent computations ---------------------------------------------------------------------------------


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def hand_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's tokenization of a request, written out."""
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    if not stripped:
        return [prefix_token(tokenizer)], encode(tokenizer, continuation)
    context_ids = encode(tokenizer, stripped)
    return context_ids, encode(tokenizer, stripped + continuation)[len(context_ids):]


def forward_logprobs(model, tokens: list[int]):
    """log-softmax of one unbatched forward pass, and its argmax, per position."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].float()
    return torch.log_softmax(logits, dim=-1), logits.argmax(dim=-1)


def hand_score(model, context_ids: list[int], targets: list[int]) -> tuple[float, bool, int]:
    """Sum of log p(target) over one plain forward pass of context + targets; greedy = all argmax."""
    logprobs, argmax = forward_logprobs(model, context_ids + targets)
    positions = range(len(context_ids) - 1, len(context_ids) - 1 + len(targets))
    total = sum(float(logprobs[p, t]) for p, t in zip(positions, targets, strict=True))
    return total, all(int(argmax[p]) == t for p, t in zip(positions, targets, strict=True)), len(targets)


@pytest.fixture(scope="module")
def scorer(tiny_model_dir: str) -> LocalLikelihoodScorer:
    return LocalLikelihoodScorer(LocalSampler(tiny_model_dir, device="cpu"), batch_size=8)


@pytest.fixture(scope="module")
def no_bos_scorer(tiny_no_bos_model_dir: str) -> LocalLikelihoodScorer:
    scorer = LocalLikelihoodScorer(LocalSampler(tiny_no_bos_model_dir, device="cpu"), batch_size=8)
    assert scorer.tokenizer.bos_token_id is None and scorer.tokenizer.eos_token_id is not None
    return scorer


@pytest.fixture(params=["bos", "no_bos"])
def any_scorer(request: pytest.FixtureRequest) -> LocalLikelihoodScorer:
    """The scorer on a tokenizer with a BOS token, then on one without (Qwen-style)."""
    return request.getfixturevalue("scorer" if request.param == "bos" else "no_bos_scorer")


# -- local scorer ---------------------------------------------------------------------------------------------


def greedy_pairs(scorer: LocalLikelihoodScorer) -> list[tuple[str, str]]:
    """Requests whose continuation is the model's own greedy next tokens, so some scores are greedy."""
    tokenizer, model = scorer.tokenizer, scorer.model
    pairs = []
    for context in ("The capital of", "Two plus two", "A quick brown"):
        ids = encode(tokenizer, context)
        _, argmax = forward_logprobs(model, ids)
        pairs.append((context, tokenizer.decode([int(argmax[-1])])))
    return pairs


def test_loglikelihood_matches_plain_forward_passes(any_scorer: LocalLikelihoodScorer) -> None:
    scorer = any_scorer
    pairs = PAIRS + greedy_pairs(scorer)
    requests = [LoglikelihoodRequest(c, t) for c, t in pairs]
    progress: list[int] = []
    scores = scorer.loglikelihood(requests, on_progress=progress.append)
    assert sum(progress) == len(requests)
    for (context, continuation), score in zip(pairs, scores, strict=True):
        context_ids, targets = hand_pair(scorer.tokenizer, context, continuation)
        logprob, greedy, count = hand_score(scorer.model, context_ids, targets)
        assert score.logprob == pytest.approx(logprob, abs=1e-4), (context, continuation)
        assert (score.is_greedy, score.n_tokens) == (greedy, count), (context, continuation)
        assert count > 0
    assert any(score.is_greedy for score in scores) and not all(score.is_greedy for score in scores)
    # the space moves to the continuation: both spellings are the same request
    assert scores[0] == scores[1]
    # a merged boundary token belongs to the context: only the tail beyond the context's encoding is scored
    assert scores[2].n_tokens == 1


def test_batching_and_padding_do_not_change_scores(scorer: LocalLikelihoodScorer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    requests = [LoglikelihoodRequest(c, t) for c, t in PAIRS]
    batched = scorer.loglikelihood(requests)
    monkeypatch.setattr(likelihood_local, "_SOFTMAX_ELEMENTS", 3 * scorer.model.config.vocab_size)
    assert scorer.loglikelihood(requests) == batched  # the log-softmax taken 3 positions at a time
    monkeypatch.undo()
    single = LocalLikelihoodScorer(scorer.sampler, batch_size=1).loglikelihood(requests)
    for a, b in zip(batched, single, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)
        assert (a.is_greedy, a.n_tokens) == (b.is_greedy, b.n_tokens)
    reversed_scores = scorer.loglikelihood(requests[::-1])[::-1]
    assert [s.logprob for s in reversed_scores] == pytest.approx([s.logprob for s in batched], abs=1e-5)


def test_long_contexts_are_cut_on_the_left(scorer: LocalLikelihoodScorer) -> None:
    short = LocalLikelihoodScorer(scorer.sampler, batch_size=4, max_length=16)
    context, continuation = "The capital of France is Paris. " * 5, " The capital of Italy is Rome."
    [score] = short.loglikelihood([LoglikelihoodRequest(context, continuation)])
    context_ids, targets = hand_pair(scorer.tokenizer, context, continuation)
    kept = (context_ids + targets)[-17:]
    expected = hand_score(scorer.model, kept[:len(kept) - len(targets)], targets)
    assert (score.logprob, score.is_greedy, score.n_tokens) == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="does not fit"):
        LocalLikelihoodScorer(scorer.sampler, max_length=4).loglikelihood([LoglikelihoodRequest("a", continuation)])


def test_rolling_matches_one_full_forward_pass(any_scorer: LocalLikelihoodScorer) -> None:
    """Every token of the text is scored, the first conditioned on BOS, or on EOS without a BOS (lm-eval)."""
    scorer = any_scorer
    progress: list[int] = []
    scores = scorer.rolling_loglikelihood([*TEXTS, ""], on_progress=progress.append)
    assert sum(progress) == len(TEXTS) + 1
    for text, score in zip(TEXTS, scores[:-1], strict=True):
        tokens = [prefix_token(scorer.tokenizer), *encode(scorer.tokenizer, text)]
        logprobs, argmax = forward_logprobs(scorer.model, tokens)
        expected = sum(float(logprobs[i, t]) for i, t in enumerate(tokens[1:]))
        assert score.logprob == pytest.approx(expected, abs=1e-4)
        assert score.n_tokens == len(tokens) - 1
        assert score.n_bytes == len(text.encode("utf-8"))
        assert score.n_correct == sum(int(argmax[i]) == t for i, t in enumerate(tokens[1:]))
    assert scores[-1] == TextScore(0.0, 0, 0, 0)
    actual, predicted = scorer.greedy_next_tokens(TEXTS[:1])[0]
    tokens = encode(scorer.tokenizer, TEXTS[0])
    assert actual == tokens and len(predicted) == len(tokens)
    assert sum(a == p for a, p in zip(actual, predicted, strict=True)) == scores[0].n_correct


def test_rolling_windows_score_every_token_once(any_scorer: LocalLikelihoodScorer) -> None:
    scorer = any_scorer
    text = TEXTS[0] * 3
    tokens = encode(scorer.tokenizer, text)
    windowed = LocalLikelihoodScorer(scorer.sampler, batch_size=3, max_length=8)
    [score] = windowed.rolling_loglikelihood([text])
    assert score.n_tokens == len(tokens) > 3 * 8
    # independently: window k predicts tokens [8k, 8k+8) from the 8 tokens before its last one
    sequence, expected, correct = [prefix_token(scorer.tokenizer), *tokens], 0.0, 0
    for start in range(1, len(sequence), 8):
        end = min(start + 8, len(sequence))
        first = max(0, end - 9)
        logprobs, argmax = forward_logprobs(scorer.model, sequence[first:end - 1])
        for position in range(start, end):
            expected += float(logprobs[position - 1 - first, sequence[position]])
            correct += int(argmax[position - 1 - first]) == sequence[position]
    assert score.logprob == pytest.approx(expected, abs=1e-4)
    assert score.n_correct == correct
    [full] = scorer.rolling_loglikelihood([text])
    assert full.n_tokens == score.n_tokens and full.logprob != pytest.approx(score.logprob)


@pytest.mark.parametrize("max_length", [1, 4])
@pytest.mark.parametrize("length", [0, 1, 5, 8, 9, 17, 30])
def test_rolling_windows_partition_the_tokens(max_length: int, length: int) -> None:
    prefix = 99
    tokens = list(range(length))
    windows = rolling_windows(tokens, prefix, max_length=max_length)
    targets = [t for _, window in windows for t in window]
    assert targets == tokens  # every token, the first one too
    assert not windows or windows[0][0] == [prefix]
    sequence = [prefix, *tokens]
    for context, window in windows:
        assert context and 1 <= len(window) <= max_length and len(context) + len(window) - 1 <= max_length
        start = sequence.index(window[0])
        assert sequence[start - len(context):start + len(window)] == context + window


def test_token_batches_pad_per_batch(any_scorer: LocalLikelihoodScorer) -> None:
    scorer = any_scorer
    texts = ["x", "The capital of France is Paris.", "Rome", "ab"]
    batches = LocalLikelihoodScorer(scorer.sampler, batch_size=2).token_batches(texts)
    pad = scorer.tokenizer.pad_token_id
    widths = []
    for text, (ids, mask) in zip(texts, batches, strict=True):
        expected = [prefix_token(scorer.tokenizer), *encode(scorer.tokenizer, text)]
        assert ids.dtype == np.int64 and mask.dtype == np.bool_ and ids.shape == mask.shape
        assert ids[mask].tolist() == expected and (ids[~mask] == pad).all() and mask[:len(expected)].all()
        widths.append(len(ids))
    assert widths[0] == widths[1] > widths[2] == widths[3]


def test_scorer_from_a_model_name_reuses_the_loaded_model(tiny_model_dir: str, scorer: LocalLikelihoodScorer) -> None:
    by_name = LocalLikelihoodScorer(tiny_model_dir, batch_size=2)
    assert by_name.model is scorer.model
    assert by_name.identity()["fingerprint"] == scorer.identity()["fingerprint"]
    assert by_name.identity()["backend"] == "local" and by_name.max_length == 512


# -- metrics --------------------------------------------------------------------------------------------------


def scores_of(*logprobs: float) -> list[ContinuationScore]:
    return [ContinuationScore(logprob, False, 1) for logprob in logprobs]


def test_acc_and_acc_norm() -> None:
    choices = ["a", "bbbbbb", "cc"]
    # acc picks choice 0 (−5); per character choice 1 wins (−6/6 = −1 > −9/2 > −5/1)
    assert multiple_choice(scores_of(-5.0, -6.0, -9.0), choices, 1) == {"acc": 0.0, "acc_norm": 1.0}
    assert multiple_choice(scores_of(-5.0, -6.0, -9.0), choices, 0) == {"acc": 1.0, "acc_norm": 0.0}
    assert multiple_choice(scores_of(-2.0, -2.0), ["aa", "bb"], 0) == {"acc": 1.0, "acc_norm": 1.0}  # ties: first
    assert multiple_choice(scores_of(-2.0, -2.0), ["aa", "bb"], 1) == {"acc": 0.0, "acc_norm": 0.0}
    with pytest.raises(ValueError):
        multiple_choice(scores_of(-1.0), ["a", "b"], 0)
    with pytest.raises(ValueError):
        multiple_choice(scores_of(-1.0, -2.0), ["a", "b"], 2)


def test_perplexity_formulas() -> None:
    assert token_perplexity(-12.0, 4) == pytest.approx(math.exp(3.0))
    assert bits_per_byte(-12.0, 8) == pytest.approx(12.0 / (8 * math.log(2)))
    assert byte_perplexity(-12.0, 8) == pytest.approx(math.exp(1.5))
    assert 2 ** bits_per_byte(-12.0, 8) == pytest.approx(byte_perplexity(-12.0, 8))
    assert math.isnan(token_perplexity(0.0, 0)) and token_perplexity(-1e6, 1) == math.inf
    corpus = corpus_perplexity([TextScore(-10.0, 5, 20, 2), TextScore(-2.0, 1, 4, 1)])
    assert corpus == pytest.approx({"token_perplexity": math.exp(12 / 6), "bits_per_byte": 12 / (24 * math.log(2)),
                                    "byte_perplexity": math.exp(12 / 24), "next_token_accuracy": 3 / 6})
    # corpus-weighted: Σ logprob / Σ tokens, not the mean of per-text perplexities (e², e² → e² either way here)
    skewed = corpus_perplexity([TextScore(-10.0, 10, 10, 0), TextScore(-10.0, 1, 1, 0)])
    assert skewed["token_perplexity"] == pytest.approx(math.exp(20 / 11))
    # word perplexity: Σ logprob over Σ words (lm-eval's weighted_perplexity), only when word counts are given
    assert word_perplexity(-12.0, 3) == pytest.approx(math.exp(4.0)) and math.isnan(word_perplexity(-1.0, 0))
    with_words = corpus_perplexity([TextScore(-10.0, 5, 20, 2), TextScore(-2.0, 1, 4, 1)], [3, 1])
    assert with_words == pytest.approx({**corpus, "word_perplexity": math.exp(12 / 4)})
    with pytest.raises(ValueError, match="word counts"):
        corpus_perplexity([TextScore(-10.0, 5, 20, 2)], [1, 2])


@pytest.mark.parametrize(("text", "words"), [
    ("the quick brown fox", 4), ("a  b\tc\nd", 4), ("a b\n", 3), ("  leading", 2), ("one", 1), ("", 1),
    ("héllo wörld ✓", 3), ("x\u2028y", 2),  # lm-eval: len(re.split(r"\s+", doc)), Unicode whitespace included
])
def test_words_are_counted_as_lm_eval_counts_them(text: str, words: int) -> None:
    assert count_words(text) == words


def test_a_tokenizer_without_bos_or_eos_cannot_score_a_texts_first_token(no_bos_scorer: LocalLikelihoodScorer,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    class NoSpecialTokens:
        """The tokenizer with neither BOS nor EOS."""

        bos_token_id = eos_token_id = None

        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            self.inner = inner

        def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return self.inner(*args, **kwargs)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.inner, name)

    bare = NoSpecialTokens(no_bos_scorer.tokenizer)
    monkeypatch.setattr(LocalLikelihoodScorer, "tokenizer", property(lambda self: bare))
    with pytest.raises(EvalInputError, match="neither a BOS nor an EOS"):
        no_bos_scorer.rolling_loglikelihood(["some text"])
    with pytest.raises(EvalInputError, match="neither a BOS nor an EOS"):
        no_bos_scorer.loglikelihood([LoglikelihoodRequest("", "some text")])
    assert no_bos_scorer.rolling_loglikelihood([""]) == [TextScore(0.0, 0, 0, 0)]  # nothing to score, no prefix


def test_perplexity_matches_torch_cross_entropy(any_scorer: LocalLikelihoodScorer) -> None:
    import torch

    scorer = any_scorer
    texts = TEXTS[:3]
    scores = scorer.rolling_loglikelihood(texts)
    nll, count = 0.0, 0
    for text, score in zip(texts, scores, strict=True):
        tokens = torch.tensor([prefix_token(scorer.tokenizer), *encode(scorer.tokenizer, text)])
        with torch.no_grad():
            logits = scorer.model(tokens[None]).logits[0, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits, tokens[1:], reduction="sum").item()
        assert token_perplexity(score.logprob, score.n_tokens) == pytest.approx(math.exp(loss / (len(tokens) - 1)),
                                                                                rel=1e-4)
        nll, count = nll + loss, count + len(tokens) - 1
    corpus = corpus_perplexity(scores)
    n_bytes = sum(len(text.encode()) for text in texts)
    assert corpus["token_perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert corpus["bits_per_byte"] == pytest.approx(nll / (n_bytes * math.log(2)), rel=1e-5)


# -- OpenAI completions scorer against the fake ---------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(retry_after_s=0.01) as server:
        yield server


def remote(fake: FakeLLMServer, **options) -> OpenAICompletionsScorer:
    return OpenAICompletionsScorer(f"{fake.url}/v1", "served", retry=FAST, **options)


def expected_continuation(context: str, continuation: str) -> tuple[float, bool, int]:
    """The fake's own numbers: its tokens starting at or after the (stripped) context's end."""
    prompt, start = context + continuation, len(context.rstrip())
    tokens = [(offset, token) for offset, token in fake_tokens(prompt) if offset >= start]
    return (math.fsum(prompt_logprob("served", prompt[:o], t) for o, t in tokens),
            all(is_fake_argmax("served", prompt[:o], t) for o, t in tokens), len(tokens))


REMOTE_PAIRS = [("The capital of France is ", "Paris"), ("Two plus two is", " four. Three times three is nine."),
                ("Question: what colour is the sky? Answer:", " blue"), ("a b c d e f g h", " i j")]


def test_openai_sums_match_the_servers_logprobs(fake: FakeLLMServer) -> None:
    requests = [LoglikelihoodRequest(c, t) for c, t in REMOTE_PAIRS]
    progress: list[int] = []
    scores = remote(fake).loglikelihood(requests, on_progress=progress.append)
    assert sum(progress) == len(requests)
    for (context, continuation), score in zip(REMOTE_PAIRS, scores, strict=True):
        logprob, greedy, count = expected_continuation(context, continuation)
        assert (score.logprob, score.is_greedy, score.n_tokens) == pytest.approx((logprob, greedy, count))
    body = fake.recent_bodies[0]
    assert body["echo"] is True and body["logprobs"] == 1 and body["temperature"] == 0


EOS_TEXT = "<|endoftext|>"


def test_openai_rolling_scores_every_token_after_the_prefix(fake: FakeLLMServer) -> None:
    """The fake, like vLLM serving a tokenizer without BOS, scores nothing for the first prompt token: each text is
    sent after the EOS text, and every token of the text is scored, conditioned on EOS (lm-eval's semantics)."""
    texts = [" " + TEXTS[0], "\none", " x", ""]  # the fake splits on whitespace: the prefix stays one token
    rolled = remote(fake, prefix=EOS_TEXT).rolling_loglikelihood(texts)
    for text, score in zip(texts, rolled, strict=True):
        whole, start = EOS_TEXT + text, len(EOS_TEXT)
        tokens = [(start + offset, token) for offset, token in fake_tokens(text)]  # every token of the text
        assert fake_tokens(whole) == ([(0, EOS_TEXT), *tokens] if text else [(0, EOS_TEXT)])
        assert score.logprob == pytest.approx(math.fsum(prompt_logprob("served", whole[:o], t) for o, t in tokens))
        assert score.n_correct == sum(is_fake_argmax("served", whole[:o], t) for o, t in tokens)
        assert (score.n_tokens, score.n_bytes) == (len(tokens), len(text.encode()))
    assert sorted(body["prompt"] for body in fake.recent_bodies) == sorted(EOS_TEXT + text for text in texts if text)
    # an empty context is the prefix too
    [score] = remote(fake, prefix=EOS_TEXT).loglikelihood([LoglikelihoodRequest("", " Paris is")])
    whole = EOS_TEXT + " Paris is"
    assert score.n_tokens == 2 and score.logprob == pytest.approx(
        prompt_logprob("served", EOS_TEXT, " Paris") + prompt_logprob("served", EOS_TEXT + " Paris", " is"))
    assert remote(fake, prefix=EOS_TEXT).identity()["prefix"] == EOS_TEXT and "prefix" not in remote(fake).identity()
    assert whole == fake.recent_bodies[-1]["prompt"]


def test_a_suites_likelihood_prefix_reaches_the_scorer(tmp_path: Path) -> None:
    from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
    from eval_pipeline.suites import load_suite

    (tmp_path / "evals").mkdir()
    (tmp_path / "c.jsonl").write_text('{"text": "one two"}\n')
    path = tmp_path / "evals" / "p.yaml"
    path.write_text("suite: p\ntask: perplexity\ndataset: {uri: c.jsonl}\nmodels:\n"
                    f"  - {{name: q, backend: openai, base_url: 'http://127.0.0.1:9/v1', model: q, "
                    f"likelihood_prefix: '{EOS_TEXT}'}}\n")
    suite = load_suite(path)
    assert build_likelihood_scorer(suite, suite.model("q")).identity()["prefix"] == EOS_TEXT


def test_openai_rolling_without_a_scored_first_token_is_an_error(fake: FakeLLMServer) -> None:
    """Without a BOS or a prefix the server cannot score a text's first token: an error, not a number that counts
    every byte and leaves a token out (it made bits per byte look 7% better than lm-eval's)."""
    with pytest.raises(LikelihoodError, match="no logprob for the text's first token"):
        remote(fake).rolling_loglikelihood([TEXTS[0]])
    with pytest.raises(LikelihoodError, match="did not read the prefix"):  # the prefix merged into the first token
        remote(fake, prefix=EOS_TEXT).rolling_loglikelihood(["one two"])
    assert remote(fake).rolling_loglikelihood([""]) == [TextScore(0.0, 0, 0, 0)]


def test_fake_completions_route_in_vllm_shape(fake: FakeLLMServer) -> None:
    import requests

    body = {"model": "served", "prompt": "The cat  sat", "echo": True, "logprobs": 1, "max_tokens": 0}
    reply = requests.post(f"{fake.url}/v1/completions", json=body, timeout=10).json()
    logprobs = reply["choices"][0]["logprobs"]
    assert reply["choices"][0]["text"] == "The cat  sat" and reply["usage"]["prompt_tokens"] == 3
    assert logprobs["tokens"] == ["The", " cat", "  sat"] and logprobs["text_offset"] == [0, 3, 7]
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert logprobs["token_logprobs"][2] == prompt_logprob("served", "The cat", "  sat")
    assert logprobs["top_logprobs"][2]["  sat"] == logprobs["token_logprobs"][2]


def test_openai_retries_throttling_and_server_errors(fake: FakeLLMServer) -> None:
    clean = remote(fake).loglikelihood([LoglikelihoodRequest(c, t) for c, t in REMOTE_PAIRS])
    fake.reset()
    fake.fail_next("throttle", 2, protocol="openai")
    fake.fail_next("unavailable", 1, protocol="openai")
    fake.error_rate_5xx = 0.3
    requests = [LoglikelihoodRequest(c, t) for c, t in REMOTE_PAIRS] * 3
    scores = remote(fake, n_concurrent=4).loglikelihood(requests)
    assert scores == clean * 3
    statuses = fake.requests_by_status
    assert statuses[429] == 2 and statuses[500] + statuses[503] >= 2 and statuses[200] == len(requests)
    fake.error_rate_5xx = 1.0
    with pytest.raises(LikelihoodError, match="gave up after 2 attempts"):
        OpenAICompletionsScorer(f"{fake.url}/v1", "served", retry=RetryPolicy(2, 0.001, 0.01)).loglikelihood(
            requests[:1])


@pytest.mark.parametrize(("mode", "message"), [("none", "returned no logprobs"),
                                               ("generated_only", "did not echo the prompt")])
def test_openai_server_without_prompt_logprobs_is_a_clear_error(fake: FakeLLMServer, mode: str, message: str) -> None:
    fake.completion_logprobs = mode
    with pytest.raises(LikelihoodError, match=message) as error:
        remote(fake).loglikelihood([LoglikelihoodRequest(c, t) for c, t in REMOTE_PAIRS])
    assert fake.url in str(error.value) and "served" in str(error.value)
    with pytest.raises(LikelihoodError, match=message):
        remote(fake).rolling_loglikelihood(TEXTS[:1])


def test_openai_empty_context_needs_a_bos(fake: FakeLLMServer) -> None:
    with pytest.raises(LikelihoodError, match="empty context"):
        remote(fake).loglikelihood([LoglikelihoodRequest("", "Paris is")])


def test_prompt_logprobs_with_a_bos_token() -> None:
    """vLLM with a BOS-adding tokenizer: a zero-width null first token, then every text token scored."""
    payload = {"choices": [{"text": "Hi there!", "logprobs": {
        "tokens": ["<s>", "Hi", " there", "!", " ok"], "text_offset": [0, 0, 2, 8, 9],
        "token_logprobs": [None, -3.0, -1.0, -0.5, -0.1],
        "top_logprobs": [None, {"Hi": -3.0, "Hello": -1.0}, {" there": -1.0}, {"!": -0.5}, {" ok": -0.1}]}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1}}
    tokens = parse_prompt_logprobs(payload, "Hi there!")
    assert [t.text for t in tokens] == ["<s>", "Hi", " there", "!"]
    assert [t.logprob for t in continuation_tokens(tokens, 0)] == [-3.0, -1.0, -0.5]
    assert [t.text for t in continuation_tokens(tokens, 2)] == [" there", "!"]
    assert [t.is_argmax for t in text_tokens(tokens)] == [False, True, True]


def vllm_payload(prompt: str, tokens: list[str], logprobs: list[float | None]) -> dict:
    """vLLM's echo reply: offsets advance by each shown token's text, a BOS's too."""
    offsets = [sum(map(len, tokens[:i])) for i in range(len(tokens))]
    tops = [None if v is None else {t: v} for t, v in zip(tokens, logprobs, strict=True)]
    return {"choices": [{"text": prompt + " ok", "logprobs": {"tokens": [*tokens, " ok"],
                                                             "text_offset": [*offsets, offsets[-1] + 1],
                                                             "token_logprobs": [*logprobs, -0.1],
                                                             "top_logprobs": [*tops, {" ok": -0.1}]}}],
            "usage": {"prompt_tokens": len(tokens), "completion_tokens": 1}}


def test_prompt_logprobs_as_vllm_reports_them() -> None:
    # a BOS-adding tokenizer: '<s>' shown, offsets counted after it; the continuation is found in the prompt
    tokens = parse_prompt_logprobs(vllm_payload("Hi there!", ["<s>", "Hi", " there", "!"], [None, -3.0, -1.0, -0.5]),
                                   "Hi there!")
    assert [t.offset for t in tokens] == [0, 0, 2, 8]
    assert [t.text for t in continuation_tokens(tokens, 2)] == [" there", "!"]
    assert [t.logprob for t in text_tokens(tokens)] == [-3.0, -1.0, -0.5]
    # no BOS (Qwen-style): the text's first token is unscored, which is an error for a whole text
    bare = parse_prompt_logprobs(vllm_payload("Hi there!", ["Hi", " there", "!"], [None, -1.0, -0.5]), "Hi there!")
    assert [t.offset for t in bare] == [0, 2, 8]
    with pytest.raises(PermanentError, match="first token"):
        text_tokens(bare)
    # a first token that is a piece of a character is part of the text, not a BOS: never dropped silently
    pieces = parse_prompt_logprobs(vllm_payload("✓ ok", ["\ufffd", "\ufffd", " ok"], [None, -1.0, -0.5]), "✓ ok")
    with pytest.raises(PermanentError, match="first token"):
        text_tokens(pieces)
    # the EOS text as prefix: every token of the text scored, the first conditioned on EOS
    prompt = EOS_TEXT + "Hi there!"
    prefixed = parse_prompt_logprobs(vllm_payload(prompt, [EOS_TEXT, "Hi", " there", "!"], [None, -3.0, -1.0, -0.5]),
                                     prompt)
    assert [t.logprob for t in prefixed_tokens(prefixed, EOS_TEXT)] == [-3.0, -1.0, -0.5]
