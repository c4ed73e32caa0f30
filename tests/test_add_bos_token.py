"""A local model's ``add_bos_token`` (lm-eval 0.4.13's default: a BOS before every context), checked against
lm-eval 0.4.13's tokenization written out (``HFLM.tok_encode`` with the tokenizer's special tokens, ``_encode_pair``,
``loglikelihood``'s empty context, ``get_rolling_token_windows`` over the BOS-prefixed text) and plain forward passes,
on a tokenizer with a BOS and on one without (where nothing is added). The two-process comparison with lm-eval itself
is tests/test_lm_eval_parity.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.likelihood import LoglikelihoodRequest
from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
from eval_pipeline.inference.local import LocalSampler
from tests.test_likelihood import PAIRS, TEXTS, encode, forward_logprobs, hand_score
from tests.tiny_model import prefix_token


@pytest.fixture(scope="module", params=["bos", "no_bos"])
def sampler(request: pytest.FixtureRequest) -> LocalSampler:
    """A sampler with ``add_bos_token`` True over the tiny model with a BOS tokenizer, then one without a BOS."""
    folder = request.getfixturevalue("tiny_model_dir" if request.param == "bos" else "tiny_no_bos_model_dir")
    return LocalSampler(folder, device="cpu", add_bos_token=True)


def lm_eval_encode(tokenizer, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    """lm-eval 0.4.13's default ``tok_encode``: the tokenizer's own special tokens, none when the text already
    starts with the prefix token's text."""
    special = not text.startswith(tokenizer.decode([prefix_token(tokenizer)]))
    return tokenizer(text, add_special_tokens=special)["input_ids"]


def lm_eval_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    """lm-eval 0.4.13's ``loglikelihood`` tokenization of one request, at its default."""
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    if not stripped:
        targets = encode(tokenizer, continuation)
        prefix = prefix_token(tokenizer)
        return ([prefix], targets) if targets[0] != prefix else (targets[:1], targets[1:])
    context_ids = lm_eval_encode(tokenizer, stripped)
    return context_ids, lm_eval_encode(tokenizer, stripped + continuation)[len(context_ids):]


def test_loglikelihood_puts_lm_evals_bos_before_each_context(sampler: LocalSampler) -> None:
    tokenizer, has_bos = sampler.tokenizer, sampler.tokenizer.bos_token_id is not None
    pairs = [*PAIRS, (tokenizer.decode([prefix_token(tokenizer)]) + "The capital of", " France"),  # no second BOS
             ("", tokenizer.decode([prefix_token(tokenizer)]) + " Paris")]  # the prefix token is already there
    requests = [LoglikelihoodRequest(c, t) for c, t in pairs]
    scores = LocalLikelihoodScorer(sampler, batch_size=4).loglikelihood(requests)
    unset = LocalLikelihoodScorer(LocalSampler(sampler.model_name, device="cpu"), batch_size=4).loglikelihood(requests)
    for (context, continuation), score, before in zip(pairs, scores, unset, strict=True):
        context_ids, targets = lm_eval_pair(tokenizer, context, continuation)
        if context.strip() and not context.startswith("<|"):
            assert (context_ids[0] == tokenizer.bos_token_id) is has_bos  # the written-out reference adds it
        logprob, greedy, count = hand_score(sampler.model, context_ids, targets)
        assert (score.logprob, score.n_tokens) == (pytest.approx(logprob, abs=1e-4), count), (context, continuation)
        assert score.is_greedy is greedy
        if has_bos and context.strip() and not context.startswith("<|"):
            assert score.logprob != pytest.approx(before.logprob, abs=1e-4)  # the BOS changes the number
        elif not has_bos and context:
            assert (score.logprob, score.n_tokens) == (pytest.approx(before.logprob, abs=1e-5), before.n_tokens)
    assert scores[-1].n_tokens == unset[-1].n_tokens - 1  # the leading prefix token became the context


def test_rolling_scores_the_texts_own_bos(sampler: LocalSampler) -> None:
    """lm-eval 0.4.13 encodes a rolling text with its BOS and prefixes the prefix token: the BOS is scored too."""
    tokenizer = sampler.tokenizer
    scorer = LocalLikelihoodScorer(sampler, batch_size=4)
    scores = scorer.rolling_loglikelihood(TEXTS)
    for text, score in zip(TEXTS, scores, strict=True):
        tokens = [prefix_token(tokenizer), *lm_eval_encode(tokenizer, text)]
        logprobs, argmax = forward_logprobs(sampler.model, tokens)
        assert score.logprob == pytest.approx(sum(float(logprobs[i, t]) for i, t in enumerate(tokens[1:])), abs=1e-4)
        assert score.n_tokens == len(encode(tokenizer, text)) + (tokenizer.bos_token_id is not None)
        assert score.n_correct == sum(int(argmax[i]) == t for i, t in enumerate(tokens[1:]))
    [empty] = scorer.rolling_loglikelihood([""])  # lm-eval 0.4.13 encodes "" as [BOS] and scores it
    assert (empty.n_tokens, empty.n_bytes) == (int(tokenizer.bos_token_id is not None), 0)
    ids, mask = scorer.token_batches(TEXTS[:1])[0]
    assert ids[mask].tolist() == [prefix_token(tokenizer), *lm_eval_encode(tokenizer, TEXTS[0])]


def test_rolling_windows_over_the_bos_prefixed_text(sampler: LocalSampler) -> None:
    """``get_rolling_token_windows(tok_encode(text), prefix_token_id, max_length, 1)``, disjoint, written out."""
    tokenizer, text = sampler.tokenizer, TEXTS[0] * 2
    [score] = LocalLikelihoodScorer(sampler, batch_size=2, max_length=8).rolling_loglikelihood([text])
    sequence, expected = [prefix_token(tokenizer), *lm_eval_encode(tokenizer, text)], 0.0
    for start in range(1, len(sequence), 8):
        end = min(start + 8, len(sequence))
        first = max(0, end - 9)
        logprobs, _ = forward_logprobs(sampler.model, sequence[first:end - 1])
        expected += sum(float(logprobs[p - 1 - first, sequence[p]]) for p in range(start, end))
    assert score.n_tokens == len(sequence) - 1 > 16
    assert score.logprob == pytest.approx(expected, abs=1e-4)


def test_generation_prompts_get_the_bos_unless_they_start_with_one(sampler: LocalSampler) -> None:
    """lm-eval 0.4.13's ``tok_batch_encode`` at its default: the tokenizer's special tokens, none when the prompt
    (plain, or rendered by a chat template) already starts with the BOS text."""
    import copy

    tokenizer, text = sampler.tokenizer, "The capital of France is"
    messages = ({"role": "user", "content": text},)
    request = GenerationRequest("s", 0, messages)  # type: ignore[arg-type]
    params = GenerationParams(max_tokens=2)
    plain = LocalSampler(sampler.model_name, device="cpu", chat_template=False, add_bos_token=True)
    [answer] = plain.generate([request], params)
    assert answer.error is None and answer.tokens_in == len(lm_eval_encode(tokenizer, text))
    # a chat template without a BOS of its own gets one; one that starts with it (the tiny model's) gets no second
    for template in (tokenizer.chat_template, tokenizer.chat_template.removeprefix("{{ bos_token }}")):
        templated = copy.deepcopy(tokenizer)
        templated.chat_template = template
        chat = LocalSampler.from_loaded(sampler.model, templated, name="t", revision="r")
        chat.add_bos_token = True
        rendered = templated.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        [answer] = chat.generate([request], params)
        assert answer.error is None and answer.tokens_in == len(lm_eval_encode(tokenizer, rendered))


def test_add_bos_token_enters_the_identity_only_when_set(tiny_model_dir: str) -> None:
    unset = LocalSampler(tiny_model_dir, device="cpu")
    assert "add_bos_token" not in unset.identity() and "add_bos_token" not in LocalLikelihoodScorer(unset).identity()
    for value in (True, False):
        scorer = LocalLikelihoodScorer(LocalSampler(tiny_model_dir, device="cpu", add_bos_token=value))
        assert scorer.identity() == {**LocalLikelihoodScorer(unset).identity(), "add_bos_token": value}


def write_suite(tmp_path: Path, model: str) -> Path:
    (tmp_path / "evals").mkdir(exist_ok=True)
    (tmp_path / "c.jsonl").write_text('{"text": "one two"}\n')
    path = tmp_path / "evals" / "p.yaml"
    path.write_text(f"suite: p\ntask: perplexity\ndataset: {{uri: c.jsonl}}\nmodels:\n  - {model}\n")
    return path


def test_a_suites_add_bos_token_reaches_the_scorer(tmp_path: Path, tiny_model_dir: str) -> None:
    from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
    from eval_pipeline.suites import load_suite

    suite = load_suite(write_suite(tmp_path, f"{{name: q, backend: local, model: {tiny_model_dir}, "
                                             "add_bos_token: true}"))
    scorer = build_likelihood_scorer(suite, suite.model("q"))
    assert scorer.add_bos_token is True and scorer.identity()["add_bos_token"] is True


@pytest.mark.parametrize("backend", ["bedrock", "openai"])
def test_add_bos_token_on_a_backend_that_cannot_honour_it(tmp_path: Path, backend: str) -> None:
    from eval_pipeline.suites import load_suite

    path = write_suite(tmp_path, f"{{name: remote-m, backend: {backend}, model: m, base_url: 'http://127.0.0.1:9/v1', "
                                 "add_bos_token: true}" if backend == "openai" else
                       f"{{name: remote-m, backend: {backend}, model: amazon.nova-micro-v1:0, add_bos_token: false}}")
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert "p.yaml:" in message and "model 'remote-m'" in message and "field 'add_bos_token'" in message
