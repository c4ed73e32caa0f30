"""Corpus metrics of a perplexity task: token perplexity, bits per byte, byte perplexity, word perplexity and
next-token accuracy over all texts together (sums over the corpus, as lm-evaluation-harness aggregates them, not a
mean of per-text values), with a 95% CI from a bootstrap over texts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.inference.likelihood import TextScore
from eval_pipeline.metrics.aggregate import breakdown_column
from eval_pipeline.metrics.likelihood import corpus_perplexity, count_words

BOOTSTRAP_RESAMPLES = 2000
CI_METHOD = "percentile_bootstrap"
"""The ``ci_method`` of corpus metrics: percentiles of the metric over texts resampled with replacement."""
CORPUS_METRICS = ("token_perplexity", "bits_per_byte", "byte_perplexity", "word_perplexity", "next_token_accuracy")


def aggregate_corpus(suite: str, samples: pd.DataFrame, scores: pd.DataFrame,
                     breakdown_keys: list[str] | tuple[str, ...] = (), *, seed: int = 0) -> pd.DataFrame:
    """METRICS rows per model: overall and per breakdown value; ``errors`` counts texts that failed. Words for
    ``word_perplexity`` are counted in each sample's text (``input``) as lm-eval counts them."""
    groups = {key: dict(zip(samples["sample_id"], breakdown_column(samples, key), strict=True))
              for key in breakdown_keys}
    words = dict(zip(samples["sample_id"], map(count_words, samples["input"].astype(str)), strict=True))
    rows = []
    for model, frame in scores.groupby("model", sort=False):
        frame = frame.assign(n_words=frame["sample_id"].map(words))
        rows += _rows(suite, str(model), None, None, frame, seed)
        for key in breakdown_keys:
            values = frame["sample_id"].map(groups[key])
            for value in sorted({v for v in groups[key].values() if v is not None}):
                rows += _rows(suite, str(model), key, value, frame[values == value], seed)
    return pd.DataFrame(rows, columns=METRICS.names)


def _rows(suite: str, model: str, key: str | None, value: str | None, frame: pd.DataFrame,
          seed: int) -> list[dict[str, object]]:
    ok = frame[frame["error"].isna()]
    texts = [TextScore(float(r.logprob), int(r.n_tokens), int(r.n_bytes), int(r.n_correct))
             for r in ok.itertuples(index=False)]
    words = [int(n) for n in ok["n_words"]]
    point = corpus_perplexity(texts, words) if texts else {}
    intervals = _bootstrap(texts, words, seed)
    base = {"suite": suite, "model": model, "breakdown_key": key, "breakdown_value": value, "n": len(texts),
            "errors": int(frame["error"].notna().sum()), "k": None, "stderr": math.nan,
            "ci_method": CI_METHOD if intervals else None}
    return [{**base, "metric": name, "value": point.get(name, math.nan),
             "ci_low": intervals.get(name, (math.nan, math.nan))[0],
             "ci_high": intervals.get(name, (math.nan, math.nan))[1]}
            for name in CORPUS_METRICS]


def _bootstrap(texts: list[TextScore], words: list[int], seed: int) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each corpus metric over texts resampled with replacement."""
    if len(texts) < 2:
        return {}
    sums = np.array([[t.logprob, t.n_tokens, t.n_bytes, t.n_correct, n] for t, n in zip(texts, words, strict=True)],
                    dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(texts), size=(BOOTSTRAP_RESAMPLES, len(texts)))
    logprob, tokens, n_bytes, correct, n_words = (sums[:, i][picks].sum(axis=1) for i in range(5))
    draws = {"token_perplexity": np.exp(-logprob / tokens), "bits_per_byte": -logprob / (n_bytes * math.log(2)),
             "byte_perplexity": np.exp(-logprob / n_bytes), "word_perplexity": np.exp(-logprob / n_words),
             "next_token_accuracy": correct / tokens}
    return {name: (float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))) for name, d in draws.items()}
