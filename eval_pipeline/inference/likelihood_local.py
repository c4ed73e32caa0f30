"""Log-likelihood scoring with a local transformers model, batched, with lm-evaluation-harness's semantics.

Tokens are encoded without special tokens (lm-eval's default). The prefix token is BOS, or EOS when the tokenizer
has no BOS (Qwen-style; lm-eval's ``prefix_token_id``): an empty context is that token, and a rolling text's first
token is conditioned on it, so every token of a text is scored. Requests are sorted longest first, right-padded
and run one forward pass per batch; the log-softmax is taken only at the scored positions. Inputs longer than
``max_length`` are cut on the left (the continuation is kept whole).

A sampler with ``add_bos_token`` True scores as lm-eval 0.4.13 does by default (see ``bos``): each non-empty context
and each rolling text is encoded with a BOS first (none when the tokenizer has no BOS), so a rolling text's BOS is
itself scored, conditioned on the prefix token. Set either way, an empty context followed by a continuation whose
first token is the prefix token takes that token as its context, as lm-eval does.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.bos import prefix_token_id, with_bos
from eval_pipeline.inference.likelihood import ContinuationScore, LoglikelihoodRequest, TextScore, split_boundary
from eval_pipeline.inference.local import LocalSampler, _context_length, _pad_token_id

DEFAULT_MAX_LENGTH = 2048
"""Used when neither ``max_length`` nor the model's config gives a context length."""

_SOFTMAX_ELEMENTS = 1 << 26
"""Logits turned to float32 log-probabilities at once (256 MiB): long rolling windows × big vocabularies."""

TokenPair = tuple[list[int], list[int]]
"""(context tokens, target tokens): the targets are scored, each conditioned on everything before it."""


@dataclass(frozen=True)
class _Scored:
    logprob: float
    targets: list[int]
    predictions: list[int]

    @property
    def n_correct(self) -> int:
        return sum(target == prediction for target, prediction in zip(self.targets, self.predictions, strict=True))


class LocalLikelihoodScorer:
    """``LikelihoodScorer`` over a ``LocalSampler``'s loaded model and tokenizer (same device and dtype)."""

    backend = "local"

    def __init__(self, model: LocalSampler | str, *, batch_size: int = 8, max_length: int | None = None) -> None:
        if batch_size < 1:
            raise EvalInputError(f"batch_size must be at least 1, got {batch_size}", field="batch_size")
        if max_length is not None and max_length < 1:
            raise EvalInputError(f"max_length must be at least 1, got {max_length}", field="max_length")
        self.sampler = model if isinstance(model, LocalSampler) else LocalSampler(model)
        self.batch_size = batch_size
        self._max_length = max_length
        self._keeps_logits: bool | None = None

    # -- the loaded model --------------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        return self.sampler.tokenizer

    @property
    def model(self) -> Any:
        return self.sampler.model

    @property
    def add_bos_token(self) -> bool | None:
        """The sampler's ``add_bos_token``: None (unset) scores as lm-eval 0.4 before 0.4.13 did."""
        return getattr(self.sampler, "add_bos_token", None)

    @property
    def max_length(self) -> int:
        """Tokens one forward pass may hold: as given, else the model's context length."""
        return self._max_length or _context_length(self.model) or DEFAULT_MAX_LENGTH

    def identity(self) -> dict[str, Any]:
        """The sampler's identity (backend, model, fingerprint; ``add_bos_token`` when set) and the window length
        when one was set."""
        return {**self.sampler.identity(), "backend": self.backend, "max_length": self._max_length}

    # -- LikelihoodScorer --------------------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      on_progress: Callable[[int], None] | None = None) -> list[ContinuationScore]:
        """log p(continuation | context) per request, in request order."""
        pairs = self._request_tokens(requests)
        report = (lambda done: on_progress(len(done))) if on_progress is not None else None
        return [ContinuationScore(logprob=scored.logprob, is_greedy=scored.n_correct == len(scored.targets),
                                  n_tokens=len(scored.targets))
                for scored in self._score(pairs, report)]

    def rolling_loglikelihood(self, texts: Sequence[str],
                              on_progress: Callable[[int], None] | None = None) -> list[TextScore]:
        """Each text's total log-likelihood over disjoint windows of ``max_length`` tokens (see TextScore)."""
        return [TextScore(logprob=scored.logprob, n_tokens=len(scored.targets), n_bytes=len(text.encode("utf-8")),
                          n_correct=scored.n_correct)
                for text, scored in zip(texts, self._rolling(texts, on_progress), strict=True)]

    # -- extras ------------------------------------------------------------------------------------------------

    def greedy_next_tokens(self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """Per text: (the actual tokens, the model's argmax predictions for them) over every scored position."""
        return [(scored.targets, scored.predictions) for scored in self._rolling(texts, None)]

    def token_batches(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (token ids int64, mask bool, True on real tokens and False on padding), the tokens the model
        reads for it (the prefix token first: BOS, else EOS; then the text's BOS under ``add_bos_token``),
        right-padded to the longest text of its batch (consecutive runs of ``batch_size`` texts in the order given)."""
        prefix = self._prefix_token()
        ids_of = self._encode_many(texts)
        encoded = [[prefix, *self._text_tokens(text, ids_of[text])] for text in texts]
        pad = _pad_token_id(self.tokenizer, self.model)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(encoded), self.batch_size):
            out += right_padded(encoded[start:start + self.batch_size], pad)
        return out

    # -- internals ---------------------------------------------------------------------------------------------

    def _prefix_token(self) -> int:
        """What an empty context is and what a text's first token is conditioned on: BOS, else EOS (lm-eval's
        ``prefix_token_id``)."""
        token = prefix_token_id(self.tokenizer)
        if token is not None:
            return token
        raise EvalInputError(f"model {self.sampler.model_name}: the tokenizer has neither a BOS nor an EOS token, "
                             "so a text's first token (or a continuation with an empty context) cannot be scored")

    def _encode_many(self, texts: Sequence[str]) -> dict[str, list[int]]:
        """Each distinct text's tokens, encoded in one batched tokenizer call."""
        distinct = sorted({text for text in texts if text})
        encoded = self.tokenizer(distinct, add_special_tokens=False)["input_ids"] if distinct else []
        return {"": [], **{text: list(ids) for text, ids in zip(distinct, encoded, strict=True)}}

    def _text_tokens(self, text: str, ids: list[int]) -> list[int]:
        """lm-eval's ``tok_encode`` of a context or rolling text: ``ids`` with a BOS first under ``add_bos_token``."""
        return with_bos(self.tokenizer, text, ids, self.add_bos_token)

    def _request_tokens(self, requests: Sequence[LoglikelihoodRequest]) -> list[TokenPair]:
        """lm-eval's ``_encode_pair``: the continuation is the tail of the whole encoding beyond the context's;
        an empty context is the prefix token."""
        splits = [split_boundary(request.context, request.continuation) for request in requests]
        encoded = self._encode_many([text for context, continuation in splits
                                     for text in (context, context + continuation, continuation)])
        pairs = []
        for context, continuation in splits:
            if not context:
                prefix, targets = self._prefix_token(), encoded[continuation]
                if self.add_bos_token is not None and targets and targets[0] == prefix:
                    pairs.append((targets[:1], targets[1:]))  # lm-eval 0.4.13: the prefix token is already there
                else:
                    pairs.append(([prefix], targets))
            else:
                context_ids = self._text_tokens(context, encoded[context])
                whole = self._text_tokens(context + continuation, encoded[context + continuation])
                pairs.append((context_ids, whole[len(context_ids):]))
        return pairs

    def _rolling(self, texts: Sequence[str], on_progress: Callable[[int], None] | None) -> list[_Scored]:
        owners: list[int] = []
        pairs: list[TokenPair] = []
        ids_of = self._encode_many(texts)
        encoded = {text: self._text_tokens(text, ids_of[text]) for text in set(texts)}
        # only a text with tokens needs the prefix token (an empty text scores nothing, whatever the tokenizer,
        # unless add_bos_token gives it a BOS: lm-eval 0.4.13 scores that BOS)
        prefix = self._prefix_token() if any(encoded[text] for text in texts) else -1
        for index, text in enumerate(texts):
            for window in rolling_windows(encoded[text], prefix, self.max_length):
                owners.append(index)
                pairs.append(window)
        left = Counter(owners)
        if on_progress is not None and len(left) < len(texts):
            on_progress(len(texts) - len(left))

        def report(done: list[int]) -> None:
            finished = 0
            for pair in done:
                left[owners[pair]] -= 1
                finished += left[owners[pair]] == 0
            if on_progress is not None and finished:
                on_progress(finished)

        merged = [_Scored(0.0, [], []) for _ in texts]
        for owner, scored in zip(owners, self._score(pairs, report), strict=True):
            before = merged[owner]
            merged[owner] = _Scored(before.logprob + scored.logprob, before.targets + scored.targets,
                                    before.predictions + scored.predictions)
        return merged

    def _score(self, pairs: Sequence[TokenPair], report: Callable[[list[int]], None] | None) -> list[_Scored]:
        """Every pair's summed target log-probability and argmax predictions, batched longest first."""
        import torch

        limit = self.max_length
        inputs: list[list[int]] = []
        for context, targets in pairs:
            if len(targets) > limit:
                raise EvalInputError(f"a continuation of {len(targets)} tokens does not fit in max_length {limit}")
            inputs.append((context + targets)[-(limit + 1):][:-1])
        results = [_Scored(0.0, [], []) for _ in pairs]
        empty = [index for index, (_, targets) in enumerate(pairs) if not targets]
        if empty and report is not None:
            report(empty)
        order = sorted((index for index, (_, targets) in enumerate(pairs) if targets),
                       key=lambda index: (-len(inputs[index]), index))
        model = self.model
        pad = _pad_token_id(self.tokenizer, model)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                width = len(inputs[batch[0]])
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                rows: list[int] = []
                columns: list[int] = []
                targets: list[int] = []
                for row, index in enumerate(batch):
                    tokens, wanted = inputs[index], pairs[index][1]
                    ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                    rows += [row] * len(wanted)
                    columns += range(len(tokens) - len(wanted), len(tokens))
                    targets += wanted
                values, predictions = self._gather(model, ids, rows, columns, targets)
                offset = 0
                for index in batch:
                    count = len(pairs[index][1])
                    results[index] = _Scored(float(values[offset:offset + count].sum()), list(pairs[index][1]),
                                             predictions[offset:offset + count])
                    offset += count
                if report is not None:
                    report(batch)
        return results

    def _gather(self, model: Any, ids: Any, rows: list[int], columns: list[int],
                targets: list[int]) -> tuple[np.ndarray, list[int]]:
        """log p(target) (float64) and the argmax at each (row, column) of one forward pass over ``ids``. The LM
        head runs only on the columns needed when the model takes ``logits_to_keep``; the float32 log-softmax
        runs on at most ``_SOFTMAX_ELEMENTS`` logits at a time."""
        import torch

        device = model.device
        keep = sorted(set(columns))
        if self._keeps_logits is None:
            self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        if self._keeps_logits and len(keep) < ids.shape[1]:
            where = {column: slot for slot, column in enumerate(keep)}
            logits = model(input_ids=ids.to(device), use_cache=False,
                           logits_to_keep=torch.tensor(keep, device=device)).logits
            columns = [where[column] for column in columns]
        else:
            logits = model(input_ids=ids.to(device), use_cache=False).logits
        row_index, column_index = torch.tensor(rows, device=device), torch.tensor(columns, device=device)
        wanted = torch.tensor(targets, device=device)
        step = max(1, _SOFTMAX_ELEMENTS // logits.shape[-1])
        values, predictions = [], []
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            selected = logits[row_index[part], column_index[part]].float()
            logprobs = torch.log_softmax(selected, dim=-1).gather(1, wanted[part, None])[:, 0]
            values.append(logprobs.double().cpu().numpy())
            predictions += selected.argmax(dim=-1).cpu().tolist()
        return np.concatenate(values), predictions


def rolling_windows(tokens: Sequence[int], prefix: int, max_length: int) -> list[TokenPair]:
    """(context, targets) windows scoring every token once, as lm-eval's disjoint rolling windows
    (``get_rolling_token_windows`` with ``context_len=1``): windows of up to ``max_length`` targets, the first
    conditioned on ``prefix`` (the prefix token: BOS, else EOS), each later one on the tokens before it, as many
    as fit in ``max_length``. There is no prefix-less form: it would leave the first token unscored while every
    byte of the text still counts.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    sequence = [prefix, *tokens]
    windows: list[TokenPair] = []
    start = 1
    while start < len(sequence):
        end = min(start + max_length, len(sequence))
        windows.append((sequence[max(0, end - 1 - max_length):start], sequence[start:end]))
        start = end
    return windows


__all__ = ["LocalLikelihoodScorer", "rolling_windows"]


def right_padded(sequences: Sequence[Sequence[int]], pad: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each sequence right-padded to the longest: (int64 ids, bool mask True on real tokens)."""
    width = max((len(ids) for ids in sequences), default=0)
    out = []
    for ids in sequences:
        tokens = np.full(width, pad, dtype=np.int64)
        tokens[:len(ids)] = ids
        mask = np.zeros(width, dtype=bool)
        mask[:len(ids)] = True
        out.append((tokens, mask))
    return out
