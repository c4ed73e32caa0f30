"""``EncodingEvaluation``: one forward pass per text, scored by next-token prediction accuracy."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eval_pipeline.evaluations.base import Evaluation, EvaluationOutcome, Intermediate, chunks
from eval_pipeline.evaluations.job import runner_of
from eval_pipeline.evaluations.tokens import decode_all, encode_text, pad_id, padded, tokenizer_of
from eval_pipeline.inference.likelihood import LikelihoodScorer
from eval_pipeline.inference.local import eval_mode as local_eval_mode


def as_likelihood_scorer(inference: Any) -> LikelihoodScorer:
    """``inference`` when it scores log-likelihoods; a ``LocalSampler`` wrapped in a ``LocalLikelihoodScorer``; a
    job's (an ``Evaluator``'s) own inference."""
    inference = runner_of(inference)
    if callable(getattr(inference, "loglikelihood", None)) and callable(
            getattr(inference, "rolling_loglikelihood", None)):
        return inference
    from eval_pipeline.inference.local import LocalSampler

    if isinstance(inference, LocalSampler):
        from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer

        return LocalLikelihoodScorer(inference, batch_size=inference.batch_size)
    raise TypeError(f"this evaluation needs a LikelihoodScorer or a LocalSampler, got {type(inference).__name__}")


def eval_mode(scorer: Any) -> contextlib.AbstractContextManager[None]:
    """A local scorer's model in eval mode for the block (no dropout), then back in training mode if it was:
    a training loop's live model."""
    sampler = getattr(scorer, "sampler", None)
    model = scorer.model if getattr(sampler, "_live", None) is not None else None
    return local_eval_mode(model)


def text_intermediates(scorer: Any, encoding: Any, texts: Sequence[str],
                       parts: Sequence[range] | None = None) -> list[Intermediate]:
    """Per text the (ids, mask) the model reads: the scorer's own batches (within each chunk of ``parts``), else
    ``encoding``'s tokens padded."""
    if encoding is None and callable(getattr(scorer, "token_batches", None)):
        return [(np.asarray(ids), np.asarray(mask, dtype=bool)) for part in (parts or [range(len(texts))])
                for ids, mask in scorer.token_batches([texts[i] for i in part])]
    tokenizer = tokenizer_of(scorer, encoding)
    return padded([encode_text(tokenizer, text, add_special_tokens=True) for text in texts], pad_id(tokenizer))


class EncodingEvaluation(Evaluation):
    """Evaluation using next-token prediction accuracy.

    By default a text's score is the share of its tokens that the model's argmax predicts (from the scorer's
    ``greedy_next_tokens``). A subclass that overrides ``check`` (or ``score``) scores instead the decoded
    argmax predictions: ``check(x, clean(decode(argmax)))``.
    """

    @abstractmethod
    def get(self, indx: int) -> str:
        """Get input string at index."""

    def clean(self, y_hat: str) -> str:
        """Clean the decoded model prediction before checking (default: unchanged)."""
        return y_hat

    def check(self, x: str, y_hat: str) -> bool:
        """Whether the (cleaned, decoded argmax) prediction is correct given the input. Override to use."""
        raise NotImplementedError(f"{type(self).__name__} scores token accuracy; override check() to check text")

    def score(self, xs: list[str], y_hats: list[str]) -> list[float]:
        """Per-sample scores over decoded predictions: each ``check(x, clean(y_hat))`` as a float."""
        return [float(self.check(x, self.clean(y_hat))) for x, y_hat in zip(xs, y_hats, strict=True)]

    @property
    def checks_text(self) -> bool:
        """Whether a subclass scores decoded predictions (overrides check or score) rather than tokens."""
        cls = type(self)
        return cls.check is not EncodingEvaluation.check or cls.score is not EncodingEvaluation.score

    def __call__(self, inference: Any, encoding: Any = None, reduce: str = "mean", return_intermediates: bool = False,
                 chunk_size: int = 200, **kwargs: Any) -> Any:
        """Run the evaluation; ``chunk_size`` texts go to the scorer per call."""
        return super().__call__(inference, encoding, reduce, return_intermediates, chunk_size=chunk_size, **kwargs)

    def outcome(self, inference: Any, encoding: Any = None, *, return_intermediates: bool = False,
                chunk_size: int = 200, **_: Any) -> EvaluationOutcome:
        """Per text: tokens scored, argmax hits and the score; ``metrics`` has the corpus next_token_accuracy.
        ``chunk_size`` texts go to the scorer per call."""
        scorer = as_likelihood_scorer(inference)
        texts = [self.get(index) for index in range(len(self))]
        parts = chunks(len(texts), chunk_size)
        greedy = getattr(scorer, "greedy_next_tokens", None)
        if not callable(greedy) and self.checks_text:
            raise TypeError(f"{type(scorer).__name__} gives no argmax tokens (greedy_next_tokens) to check")
        with eval_mode(scorer):
            if callable(greedy):
                pairs = [pair for part in parts for pair in greedy([texts[i] for i in part])]
                hits = [int(np.sum(np.asarray(actual) == np.asarray(predicted))) for actual, predicted in pairs]
                counts = [len(actual) for actual, _ in pairs]
            else:  # a scorer without argmax tokens still counts its hits
                rolled = [s for part in parts for s in scorer.rolling_loglikelihood([texts[i] for i in part])]
                pairs, hits, counts = [], [s.n_correct for s in rolled], [s.n_tokens for s in rolled]
        if self.checks_text:
            tokenizer = tokenizer_of(scorer, encoding)
            y_hats = decode_all(tokenizer, [list(predicted) for _, predicted in pairs])
            scores = np.asarray(self.score(texts, y_hats), dtype=float)
        else:
            scores = np.asarray([hit / max(count, 1) for hit, count in zip(hits, counts, strict=True)], dtype=float)
        rows = pd.DataFrame({"index": range(len(texts)), "text": texts, "n_tokens": counts, "n_correct": hits,
                             "score": scores})
        total_tokens = sum(counts)
        metrics = {"next_token_accuracy": sum(hits) / total_tokens if total_tokens else float("nan")}
        intermediates = text_intermediates(scorer, encoding, texts, parts) if return_intermediates else None
        return EvaluationOutcome(scores=scores, rows=rows, metrics=metrics, intermediates=intermediates)
