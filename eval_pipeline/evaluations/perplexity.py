"""Log-likelihood evaluations: dataset perplexity, and multiple choice by comparing continuations' likelihoods.

Both use the pipeline's metric functions (``metrics/likelihood.py``): the same numbers as a likelihood suite.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval_pipeline.data.formats import load_samples
from eval_pipeline.data.likelihood_formats import choice_list
from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations.base import Evaluation, EvaluationOutcome, chunks
from eval_pipeline.evaluations.encoding import as_likelihood_scorer, eval_mode, text_intermediates
from eval_pipeline.inference.likelihood import LoglikelihoodRequest
from eval_pipeline.inference.likelihood_runner import choice_context
from eval_pipeline.metrics.likelihood import corpus_perplexity, count_words, multiple_choice


class PerplexityEvaluation(Evaluation):
    """Evaluation that computes dataset perplexity (lower is better).

    Each text's rolling log-likelihood; ``reduce="mean"`` gives the corpus perplexity exp(Σ NLL / Σ tokens), the
    mean NLL over all tokens, not the mean of per-text perplexities; "sum"/"none" use per-text perplexities.
    Every token is scored, the first conditioned on BOS (EOS when the tokenizer has none), as lm-eval does.
    ``metrics``: token_perplexity, bits_per_byte, byte_perplexity, word_perplexity, next_token_accuracy
    (corpus-weighted; words counted as lm-eval counts them, ``count_words``).
    """

    @abstractmethod
    def get(self, indx: int) -> str:
        """Get input string at index."""

    def score(self, per_sample_nll: np.ndarray, per_sample_count: np.ndarray) -> list[float]:
        """Per-sample perplexity (= exp(nll / max(count, 1)))."""
        nll, count = np.asarray(per_sample_nll, dtype=float), np.asarray(per_sample_count, dtype=float)
        return [float(v) for v in np.exp(nll / np.maximum(count, 1))]

    def __call__(self, inference: Any, encoding: Any = None, reduce: str = "mean", return_intermediates: bool = False,
                 chunk_size: int = 200, **kwargs: Any) -> Any:
        """Run the evaluation; ``chunk_size`` texts go to the scorer per call."""
        return super().__call__(inference, encoding, reduce, return_intermediates, chunk_size=chunk_size, **kwargs)

    def outcome(self, inference: Any, encoding: Any = None, *, return_intermediates: bool = False,
                chunk_size: int = 200, **_: Any) -> EvaluationOutcome:
        """Every text's rolling log-likelihood, ``chunk_size`` texts per call to the scorer."""
        scorer = as_likelihood_scorer(inference)
        texts = [self.get(index) for index in range(len(self))]
        parts = chunks(len(texts), chunk_size)
        with eval_mode(scorer):
            scored = [s for part in parts for s in scorer.rolling_loglikelihood([texts[i] for i in part])]
        nll = np.asarray([-s.logprob for s in scored], dtype=float)
        count = np.asarray([s.n_tokens for s in scored], dtype=float)
        scores = np.asarray(self.score(nll, count), dtype=float)
        words = [count_words(text) for text in texts]
        corpus = corpus_perplexity(scored, words)
        rows = pd.DataFrame({"index": range(len(texts)), "nll": nll, "n_tokens": count.astype(int),
                             "n_bytes": [s.n_bytes for s in scored], "n_words": words,
                             "n_correct": [s.n_correct for s in scored], "score": scores})
        intermediates = text_intermediates(scorer, encoding, texts, parts) if return_intermediates else None
        return EvaluationOutcome(scores=scores, rows=rows, total=corpus["token_perplexity"], metrics=corpus,
                                 intermediates=intermediates)


class PerplexityComparisonEvaluation(Evaluation):
    """Evaluation using perplexity comparison for multiple-choice tasks.

    Per item, each continuation's log-likelihood after the prefix; the item scores 1 when the most likely one is
    the correct one (``acc``). ``__call__(..., normalize=True)`` scores by likelihood per character of the
    continuation instead (``acc_norm``, lm-eval's definition); ``metrics(...)`` returns both means at once.
    """

    @abstractmethod
    def get(self, indx: int) -> tuple[str, list[str], int]:
        """Get sample at index: (prefix, list_of_continuations, correct_index)."""

    def score(self, correct_flags: list[float]) -> list[float]:
        """Per-sample correctness (1.0 / 0.0)."""
        return [float(flag) for flag in correct_flags]

    def __call__(self, inference: Any, encoding: Any = None, reduce: str = "mean", return_intermediates: bool = False,
                 chunk_size: int = 200, normalize: bool = False, **kwargs: Any) -> Any:
        """Run the evaluation: acc, or acc_norm with ``normalize``; ``chunk_size`` items go to the scorer per call."""
        return super().__call__(inference, encoding, reduce, return_intermediates, chunk_size=chunk_size,
                                normalize=normalize, **kwargs)

    def metrics(self, inference: Any, encoding: Any = None, chunk_size: int = 200) -> dict[str, float]:
        """``{"acc": …, "acc_norm": …}``, means over the items."""
        return self.outcome(inference, encoding, chunk_size=chunk_size).metrics

    def outcome(self, inference: Any, encoding: Any = None, *, return_intermediates: bool = False,
                normalize: bool = False, chunk_size: int = 200, **_: Any) -> EvaluationOutcome:
        """Each continuation's log-likelihood, the requests of ``chunk_size`` items per call to the scorer."""
        scorer = as_likelihood_scorer(inference)
        items = [self.get(index) for index in range(len(self))]
        parts = chunks(len(items), chunk_size)
        with eval_mode(scorer):
            scored = iter([s for part in parts for s in scorer.loglikelihood(
                [LoglikelihoodRequest(items[i][0], continuation) for i in part for continuation in items[i][1]])])
        flags: dict[str, list[float]] = {"acc": [], "acc_norm": []}
        picks: list[list[float]] = []
        for index, (_, continuations, answer) in enumerate(items):
            results = [next(scored) for _ in continuations]
            try:
                result = multiple_choice(results, continuations, answer)
            except ValueError as exc:
                raise EvalInputError(f"item {index}: {exc}", file=self.name, field="answer") from exc
            flags["acc"].append(result["acc"])
            flags["acc_norm"].append(result["acc_norm"])
            picks.append([s.logprob for s in results])
        scores = np.asarray(self.score(flags["acc_norm" if normalize else "acc"]), dtype=float)
        rows = pd.DataFrame({"index": range(len(items)), "answer": [answer for _, _, answer in items],
                             "logprobs": picks, "acc": flags["acc"], "acc_norm": flags["acc_norm"], "score": scores})
        metrics = {name: float(np.mean(values)) if values else float("nan") for name, values in flags.items()}
        intermediates = None
        if return_intermediates:
            texts = [prefix + continuations[answer] for prefix, continuations, answer in items]
            intermediates = text_intermediates(scorer, encoding, texts, parts)
        return EvaluationOutcome(scores=scores, rows=rows, metrics=metrics, intermediates=intermediates)


class JsonlMultipleChoiceEvaluation(PerplexityComparisonEvaluation):
    """Multiple choice from a JSONL file of ``question``, ``choices`` and ``answer`` (0-based index) rows, read
    and framed as a multiple-choice suite reads them (each choice continues ``"<question> "``)."""

    def __init__(self, path: str | Path, *, name: str | None = None, limit: int | None = None) -> None:
        self.path = str(path)
        self._name = name or Path(self.path).stem
        self.samples = load_samples(self.path, "multiple_choice", limit)

    @property
    def name(self) -> str:
        return self._name

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, indx: int) -> tuple[str, list[str], int]:
        row = self.samples.iloc[indx]
        return choice_context(row["input"]), choice_list(row["choices"]), int(row["reference"])


class TextCorpusPerplexityEvaluation(PerplexityEvaluation):
    """Perplexity of a corpus: a ``.txt`` file (one document) or JSONL rows with ``text`` (one document each);
    text that is not UTF-8 is an error naming the file and the line."""

    def __init__(self, path: str | Path, *, name: str | None = None, limit: int | None = None) -> None:
        self.path = str(path)
        self._name = name or Path(self.path).stem
        self.samples = load_samples(self.path, "text", limit)

    @property
    def name(self) -> str:
        return self._name

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, indx: int) -> str:
        return str(self.samples["input"].iloc[indx])
