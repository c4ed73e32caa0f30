"""Log-likelihood scoring through a server's OpenAI legacy completions with prompt log-probabilities.

vLLM (also behind SageMaker) and OpenAI-style servers return them for ``echo=true, logprobs=1``: every prompt
token with its log-probability (the first one null) and the top alternatives. A continuation's tokens are the
prompt tokens starting at or after the context's end (its trailing whitespace moved to the continuation, as
lm-eval does). Requests go through ``RemoteSampler``'s concurrency, retries and back-off; a server that gives no
prompt log-probabilities is a ``LikelihoodError`` naming the server, never made-up numbers.

Rolling scores are one request per text: a text longer than the server's context is refused by the server.

Every token of a text is scored, as lm-eval does: the server scores nothing for the first prompt token, so a
text's first token is scored only after a token the server puts first itself (a zero-width BOS) or after
``prefix``, the text of the model's prefix token (EOS where the tokenizer has no BOS, e.g. Qwen's
``<|endoftext|>``) sent before the text. Without either, rolling scores (and an empty context) are an error
saying so: leaving the first token out while counting every byte would make bits per byte look better.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.likelihood import (
    ContinuationScore,
    LikelihoodError,
    LoglikelihoodRequest,
    TextScore,
    split_boundary,
)
from eval_pipeline.inference.openai_compat import OpenAISampler
from eval_pipeline.inference.remote import PermanentError, RetryPolicy

_NO_PARAMS = GenerationParams(max_tokens=1)


@dataclass(frozen=True)
class PromptToken:
    """One prompt token as the server scored it; ``logprob`` is None where it scored nothing (the first one)."""

    text: str
    offset: int
    logprob: float | None
    top: dict[str, float] | None

    @property
    def is_argmax(self) -> bool:
        """The token is (one of) the most likely: its log-probability is the top one."""
        if self.logprob is None or not self.top:
            raise PermanentError(f"no top_logprobs for prompt token {self.text!r}")
        return self.logprob >= max(self.top.values())


@dataclass
class _PromptScores(Completion):
    """A completion carrying the prompt's scored tokens (so it goes through the retry machinery unchanged)."""

    tokens: list[PromptToken] = field(default_factory=list)


class _EchoClient(OpenAISampler):
    """One attempt = one ``/completions`` call with ``echo`` and ``logprobs``; the prompt is the sole message."""

    def call(self, request: GenerationRequest, params: GenerationParams) -> Completion:
        prompt = request.messages[0].text
        payload = self.post("completions", {"model": self.model, "prompt": prompt, "max_tokens": params.max_tokens,
                                            "echo": True, "logprobs": 1, "temperature": 0})
        try:
            tokens = parse_prompt_logprobs(payload, prompt)
        except PermanentError as exc:
            raise PermanentError(f"{self.where}: {exc}") from exc
        return _PromptScores(output=prompt, tokens=tokens)


def parse_prompt_logprobs(payload: Any, prompt: str) -> list[PromptToken]:
    """The prompt's tokens from an ``echo=true, logprobs=N`` completion (vLLM's shape); PermanentError saying what
    is missing when the server did not return them."""
    try:
        choice = payload["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise PermanentError(f"not a completions response (no choices); body {str(payload)[:200]!r}") from exc
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(logprobs, dict):
        raise PermanentError("the server returned no logprobs: it needs OpenAI completions with echo=true and "
                             "logprobs (vLLM serves them; chat-only servers and llama.cpp do not)")
    missing = [key for key in ("tokens", "token_logprobs", "text_offset") if not isinstance(logprobs.get(key), list)]
    if missing:
        raise PermanentError(f"the server's logprobs lack {', '.join(missing)}")
    texts, values, offsets = logprobs["tokens"], logprobs["token_logprobs"], logprobs["text_offset"]
    tops = logprobs.get("top_logprobs") or [None] * len(texts)
    if not len(texts) == len(values) == len(offsets) == len(tops):
        raise PermanentError("the server's logprobs lists have different lengths")
    if not str(choice.get("text", "")).startswith(prompt) or not offsets or offsets[0] != 0:
        raise PermanentError("the server did not echo the prompt with its logprobs (echo=true is not supported); "
                             "only prompt log-probabilities can score a continuation")
    offsets = _prompt_offsets([str(text) for text in texts], values, offsets, prompt)
    usage = payload.get("usage") or {}
    n_prompt = usage.get("prompt_tokens")
    if not isinstance(n_prompt, int) or not 0 < n_prompt <= len(texts):
        n_prompt = sum(1 for offset in offsets if offset < len(prompt))
    tokens = []
    for text, value, offset, top in list(zip(texts, values, offsets, tops, strict=True))[:n_prompt]:
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            raise PermanentError(f"a prompt token's logprob is {value!r}")
        tokens.append(PromptToken(str(text), int(offset), None if value is None else float(value),
                                  dict(top) if isinstance(top, dict) else None))
    return tokens


def _prompt_offsets(texts: list[str], values: list[Any], offsets: list[Any], prompt: str) -> list[Any]:
    """Offsets into ``prompt``. vLLM advances its offsets by the text of every token it shows, an added BOS too
    (``"<s>"``, not part of the prompt): then the BOS is made zero-width and the others are moved back by its
    length, so a continuation's tokens are found at their place in the prompt. A null first token counts as an
    added BOS only when the prompt begins with the second token, not the first (a first token that is part of the
    text stays, and is then an unscored token, never silently dropped)."""
    if (len(texts) > 1 and values[0] is None and texts[0] and texts[1] and not prompt.startswith(texts[0])
            and prompt.startswith(texts[1])
            and all(isinstance(offset, int) for offset in offsets[:2]) and offsets[1] == len(texts[0])):
        return [0, *(offset - len(texts[0]) if isinstance(offset, int) else offset for offset in offsets[1:])]
    return offsets


def continuation_tokens(tokens: list[PromptToken], start: int) -> list[PromptToken]:
    """The tokens at or after character ``start``, without a null zero-width first token (BOS); any other
    null is a token the server could not score."""
    chosen = [token for token in tokens if token.offset >= start]
    if chosen and chosen[0] is tokens[0] and _is_bos(tokens):
        chosen = chosen[1:]
    if any(token.logprob is None for token in chosen):
        raise PermanentError("the server gives no logprob for the first prompt token (nothing before it, no BOS), "
                             "so a continuation with an empty context cannot be scored")
    return chosen


def text_tokens(tokens: list[PromptToken]) -> list[PromptToken]:
    """Every token of a whole text, each scored: all after a zero-width BOS. A null first token that is part of
    the text (no BOS) is an error: lm-eval scores it too (conditioned on EOS), so leaving it out is a wrong number."""
    if tokens and _is_bos(tokens):
        tokens = tokens[1:]
    if tokens and tokens[0].logprob is None:
        raise PermanentError("the server gives no logprob for the text's first token (its tokenizer puts no BOS "
                             "first), so not every token can be scored: set the model's likelihood_prefix to its "
                             "EOS token text (lm-eval conditions the first token on EOS), e.g. '<|endoftext|>'")
    if any(token.logprob is None for token in tokens):
        raise PermanentError("the server gives no logprob for a prompt token after the first")
    return tokens


def prefixed_tokens(tokens: list[PromptToken], prefix: str) -> list[PromptToken]:
    """The tokens after ``prefix`` (the prompt was ``prefix + text``), each scored. The prefix must be read as one
    token, the first (after a BOS the server adds): its text is the prefix and the text's tokens start after it."""
    if len(tokens) > 1 and _is_bos(tokens):
        tokens = tokens[1:]
    if not tokens or tokens[0].text != prefix or (len(tokens) > 1 and tokens[1].offset != len(prefix)):
        first = tokens[0].text if tokens else None
        raise PermanentError(f"the server did not read the prefix {prefix!r} as one token (first token {first!r}): "
                             "it must be the text of the model's BOS or EOS token")
    if any(token.logprob is None for token in tokens[1:]):
        raise PermanentError("the server gives no logprob for a prompt token after the prefix")
    return tokens[1:]


def _is_bos(tokens: list[PromptToken]) -> bool:
    return len(tokens) > 1 and tokens[0].logprob is None and tokens[1].offset == tokens[0].offset


class OpenAICompletionsScorer:
    """``LikelihoodScorer`` for vLLM, SageMaker-vLLM or any server returning prompt log-probabilities."""

    backend = "openai"

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, n_concurrent: int = 8,
                 timeout_s: float = 60.0, max_attempts: int = 8, retry: RetryPolicy | None = None,
                 prefix: str | None = None) -> None:
        """``prefix``: the text of the model's prefix token (BOS, else EOS), sent before each rolling text and each
        empty context, for servers whose tokenizer puts no BOS first (see the module docstring)."""
        self.client = _EchoClient(base_url, model, api_key_env=api_key_env, n_concurrent=n_concurrent,
                                  timeout_s=timeout_s, retry=retry or RetryPolicy(max_attempts=max_attempts))
        self.base_url, self.model, self.prefix = self.client.base_url, model, prefix or None

    def identity(self) -> dict[str, Any]:
        prefix = {"prefix": self.prefix} if self.prefix else {}
        return {"backend": self.backend, "model": self.model, "base_url": self.base_url, **prefix}

    def preflight(self) -> None:
        """Raises EvalInputError when the API key variable is named but not set."""
        self.client.preflight()

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      on_progress: Callable[[int], None] | None = None) -> list[ContinuationScore]:
        """One echo request per (context + continuation); an empty context is ``prefix`` when one is set."""
        splits = [split_boundary(request.context, request.continuation) for request in requests]
        splits = [(context or self.prefix or "", continuation) for context, continuation in splits]
        scores = []
        fetched = self._fetch([context + continuation for context, continuation in splits], on_progress)
        for (context, _), prompt_tokens in zip(splits, fetched, strict=True):
            try:
                tokens = (prefixed_tokens(prompt_tokens, context) if self.prefix and context == self.prefix
                          else continuation_tokens(prompt_tokens, len(context)))
                greedy = all(token.is_argmax for token in tokens)
            except PermanentError as exc:
                raise LikelihoodError(f"{self.base_url} model {self.model}: {exc}") from exc
            scores.append(ContinuationScore(logprob=math.fsum(token.logprob or 0.0 for token in tokens),
                                            is_greedy=greedy, n_tokens=len(tokens)))
        return scores

    def rolling_loglikelihood(self, texts: Sequence[str],
                              on_progress: Callable[[int], None] | None = None) -> list[TextScore]:
        """One echo request per text (after ``prefix`` when one is set); every token of the text is scored."""
        scores = []
        prompts = [self.prefix + text if self.prefix and text else text for text in texts]
        for text, prompt_tokens in zip(texts, self._fetch(prompts, on_progress), strict=True):
            try:
                tokens = prefixed_tokens(prompt_tokens, self.prefix) if self.prefix and text else text_tokens(
                    prompt_tokens)
                correct = sum(token.is_argmax for token in tokens)
            except PermanentError as exc:
                raise LikelihoodError(f"{self.base_url} model {self.model}: {exc}") from exc
            scores.append(TextScore(logprob=math.fsum(token.logprob or 0.0 for token in tokens),
                                    n_tokens=len(tokens), n_bytes=len(text.encode("utf-8")), n_correct=correct))
        return scores

    def _fetch(self, prompts: Sequence[str], on_progress: Callable[[int], None] | None) -> list[list[PromptToken]]:
        """Every non-empty prompt's tokens, in order; the first request that fails for good raises."""
        results: list[list[PromptToken]] = [[] for _ in prompts]
        wanted = [index for index, prompt in enumerate(prompts) if prompt]
        if on_progress is not None and len(wanted) < len(prompts):
            on_progress(len(prompts) - len(wanted))
        requests = [GenerationRequest(str(index), 0, ({"role": "user", "content": prompts[index]},))
                    for index in wanted]
        with contextlib.closing(self.client.stream(requests, _NO_PARAMS)) as finished:
            for position, completion in finished:
                if completion.error is not None or not isinstance(completion, _PromptScores):
                    raise LikelihoodError(f"scoring failed ({len(prompts)} requests): {completion.error}")
                results[wanted[position]] = completion.tokens
                if on_progress is not None:
                    on_progress(1)
        return results


__all__ = ["OpenAICompletionsScorer", "PromptToken", "continuation_tokens", "parse_prompt_logprobs", "prefixed_tokens",
           "text_tokens"]
