"""Corpus metrics of a perplexity task: token perplexity, bits per byte, byte perplexity and next-token accuracy
over all texts together (sums over the corpus, as lm-evaluation-harness aggregates them, not a mean of per-text
values), with a 95% CI from a bootstrap over texts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eval_pipeline.data.schemas import METRICS
from eval_pipeline.inference.likelihood import TextScore
from eval_pipeline.metrics.aggregate import breakdown_column
from eval_pipeline.metrics.likelihood import corpus_perplexity

BOOTSTRAP_RESAMPLES = 2000


def aggregate_corpus(suite: str, samples: pd.DataFrame, scores: pd.DataFrame,
                     breakdown_keys: list[str] | tuple[str, ...] = (), *, seed: int = 0) -> pd.DataFrame:
    """METRICS rows per model: overall and per breakdown value; ``errors`` counts texts that failed."""
    groups = {key: dict(zip(samples["sample_id"], breakdown_column(samples, key), strict=True))
              for key in breakdown_keys}
    rows = []
    for model, frame in scores.groupby("model", sort=False):
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
    point = corpus_perplexity(texts) if texts else {}
    intervals = _bootstrap(texts, seed)
    base = {"suite": suite, "model": model, "breakdown_key": key, "breakdown_value": value, "n": len(texts),
            "errors": int(frame["error"].notna().sum()), "k": None, "stderr": math.nan}
    return [{**base, "metric": name, "value": point.get(name, math.nan),
             "ci_low": intervals.get(name, (math.nan, math.nan))[0],
             "ci_high": intervals.get(name, (math.nan, math.nan))[1]}
            for name in ("token_perplexity", "bits_per_byte", "byte_perplexity", "next_token_accuracy")]


def _bootstrap(texts: list[TextScore], seed: int) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each corpus metric over texts resampled with replacement."""
    if len(texts) < 2:
        return {}
    sums = np.array([[t.logprob, t.n_tokens, t.n_bytes, t.n_correct] for t in texts], dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(texts), size=(BOOTSTRAP_RESAMPLES, len(texts)))
    logprob, tokens, n_bytes, correct = (sums[:, i][picks].sum(axis=1) for i in range(4))
    draws = {"token_perplexity": np.exp(-logprob / tokens), "bits_per_byte": -logprob / (n_bytes * math.log(2)),
             "byte_perplexity": np.exp(-logprob / n_bytes), "next_token_accuracy": correct / tokens}
    return {name: (float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))) for name, d in draws.items()}
