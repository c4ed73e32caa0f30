"""``RolloutEvaluation``: generate an answer per prompt through the pipeline's runner, then check it."""

from __future__ import annotations

import hashlib
import json
import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval_pipeline.data.formats import load_samples
from eval_pipeline.data.schemas import SAMPLES, SCORES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations.base import Evaluation, EvaluationOutcome, Intermediate, chunks
from eval_pipeline.evaluations.job import runner_of
from eval_pipeline.evaluations.tokens import encode_text, pad_id, padded, prompt_token_ids, tokenizer_of
from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.runner import build_requests, run_generations
from eval_pipeline.metrics.aggregate import aggregate_scores
from eval_pipeline.metrics.ranges import SCORE_RANGE, UNBOUNDED
from eval_pipeline.scoring.registry import score_one, validate_scorers
from eval_pipeline.scoring.text import parse_number
from eval_pipeline.suites.spec import ScorerSpec

logger = logging.getLogger(__name__)

CHECKERS = {"exact": "exact_match", "regex": "regex_match", "numeric": "numeric_match"}
"""Checker names of ``JsonlRolloutEvaluation``; any scorer name of the pipeline works too."""


def samples_frame(name: str, items: list[tuple[str, str | None]]) -> pd.DataFrame:
    """``(input, expected)`` pairs as a ``samples`` table (plain-text inputs, ids ``<name>-<index>``)."""
    rows = []
    for index, (text, expected) in enumerate(items):
        hashed = {"input": text, "input_kind": "text", "reference": expected}
        rows.append({"sample_id": f"{name}-{index}", "input": text, "input_kind": "text", "reference": expected,
                     "choices": None, "category": None, "metadata": "{}", "source": name, "line": index + 1,
                     "row_hash": hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]})
    return pd.DataFrame(rows, columns=SAMPLES.names)


SUMMARY_FIGURES = ("errors", "n", "stderr", "ci_low", "ci_high")
"""The pipeline's figures beside a rollout evaluation's mean (``metrics`` table columns)."""


def pipeline_summary(name: str, model: str, samples: pd.DataFrame, rows: pd.DataFrame) -> dict[str, Any]:
    """The pipeline's ``metrics`` row for these per-sample scores: ``aggregate_scores`` over them as a ``scores``
    table (an error row where ``error`` is set), inside [0, 1] when every score is, else unbounded."""
    scores = pd.DataFrame({"sample_id": rows["sample_id"], "model": model, "sample_index": rows["sample_index"],
                           "scorer": name, "score": rows["score"], "extracted": None, "request_hash": None,
                           "error": rows["error"]}, columns=SCORES.names)
    values = scores["score"][scores["error"].isna()].to_numpy(dtype=float)
    bounded = bool(((values >= 0) & (values <= 1)).all())
    table = aggregate_scores(name, samples, scores, value_range=SCORE_RANGE if bounded else UNBOUNDED)
    if table.empty:  # no samples at all
        return {"value": float("nan"), "errors": 0, "n": 0, "stderr": float("nan"), "ci_low": float("nan"),
                "ci_high": float("nan")}
    return table.iloc[0].to_dict()


def as_sampler(inference: Any) -> Sampler:
    """The sampler behind ``inference``: a Sampler itself, the one a likelihood scorer wraps, or a job's."""
    inference = runner_of(inference)
    if callable(getattr(inference, "generate", None)):
        return inference
    inner = getattr(inference, "sampler", None)
    if callable(getattr(inner, "generate", None)):
        return inner
    raise TypeError(f"a rollout evaluation needs a Sampler (with generate()), got {type(inference).__name__}")


class RolloutEvaluation(Evaluation):
    """Evaluation using autoregressive generation: ``get(i)`` gives (prompt, expected), ``clean`` + ``check``
    judge each answer. Requests go through ``run_generations``: the same request path and cache keys as a suite.
    """

    system_prompt: str | None = None
    """Sent as the system message of every request, as a suite's ``generation.system_prompt``."""

    @abstractmethod
    def get(self, indx: int) -> tuple[str, str]:
        """Get sample at index: (input_string, expected_output_string)."""

    @abstractmethod
    def clean(self, y_hat: str) -> str:
        """Clean a generated result before checking."""

    def check(self, y: str, y_hat: str) -> bool:
        """Whether the (cleaned) ``y_hat`` matches ``y``: exact, ignoring surrounding whitespace."""
        return y_hat.strip() == y.strip()

    def score(self, ys: list[str], y_hats: list[str]) -> list[float]:
        """Per-sample scores. Default: cast each ``check(y, clean(y_hat))`` to float."""
        return [float(self.check(y, self.clean(y_hat))) for y, y_hat in zip(ys, y_hats, strict=True)]

    def max_new_tokens(self, inference: Any) -> int:
        """Maximum tokens to generate. Subclasses MUST override."""
        raise NotImplementedError(f"{type(self).__name__} must override max_new_tokens()")

    def samples_table(self) -> pd.DataFrame:
        """The items as a ``samples`` table (built from ``get``); file-backed subclasses return the file's."""
        return samples_frame(self.name, [self.get(index) for index in range(len(self))])

    def __call__(self, inference: Any, encoding: Any = None, reduce: str = "mean", return_intermediates: bool = False,
                 temperature: float = 0.0, top_p: float = 1.0, chunk_size: int = 200, samples_per_prompt: int = 1,
                 **kwargs: Any) -> Any:
        """Run the evaluation (see ``outcome`` for the keyword arguments)."""
        return super().__call__(inference, encoding, reduce, return_intermediates, temperature=temperature,
                                top_p=top_p, chunk_size=chunk_size, samples_per_prompt=samples_per_prompt, **kwargs)

    def outcome(self, inference: Any, encoding: Any = None, *, return_intermediates: bool = False,
                temperature: float = 0.0, top_p: float = 1.0, chunk_size: int = 200, samples_per_prompt: int = 1,
                seed: int = 0, stop: tuple[str, ...] = (), cache: RequestCache | None = None,
                model: str | None = None, **_: Any) -> EvaluationOutcome:
        """Generate ``samples_per_prompt`` answers per item and score each.

        Scores have shape ``(n,)``, or ``(n, samples_per_prompt)`` when that is above 1. A failed generation (or
        a score that comes back NaN) is an error, as in the pipeline: NaN in the scores, left out of the mean and
        the sum, counted in ``metrics["errors"]``; the mean is the pipeline's (``aggregate_scores``: the mean over
        items of each item's mean over its scored samples), with its ``n``, ``stderr`` and interval.
        ``chunk_size`` items go to the sampler per call (so its batches never span two chunks). ``cache`` is a
        ``RequestCache`` (e.g. the pipeline's); ``model`` labels the generations.
        """
        if samples_per_prompt < 1:
            raise ValueError(f"samples_per_prompt must be at least 1, got {samples_per_prompt}")
        sampler = as_sampler(inference)
        samples = self.samples_table()
        params = GenerationParams(max_tokens=self.max_new_tokens(inference), temperature=temperature, top_p=top_p,
                                  seed=seed, stop=tuple(stop))
        label = model or str(sampler.identity().get("model") or sampler.backend)
        frames = [run_generations(samples.iloc[list(chunk)], label, sampler, params, num_samples=samples_per_prompt,
                                  system_prompt=self.system_prompt, cache=cache)[0]
                  for chunk in chunks(len(samples), chunk_size)]
        generations = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        expected = dict(zip(samples["sample_id"], samples["reference"], strict=True))
        ys = [expected[sample_id] or "" for sample_id in generations["sample_id"]]
        outputs = [output if isinstance(output, str) else "" for output in generations["output"]]
        errors = [f"generation failed: {error}" if isinstance(error, str) else None for error in generations["error"]]
        scored = [index for index, error in enumerate(errors) if error is None]
        scores = np.full(len(generations), np.nan)
        if scored:
            scores[scored] = np.asarray(self.score([ys[i] for i in scored], [outputs[i] for i in scored]), dtype=float)
        errors = [error or ("not scored" if np.isnan(score) else None) for error, score in zip(errors, scores,
                                                                                                strict=True)]
        rows = generations[["sample_id", "sample_index", "output", "finish_reason"]].assign(
            error=errors, expected=ys, score=scores)
        summary = pipeline_summary(self.name, label, samples, rows)
        failed = int(summary["errors"])
        if failed:
            first = next(error for error in errors if error)
            logger.warning("%s: %d of %d samples are errors, left out of the mean (first: %s)", self.name, failed,
                           len(errors), first)
        shaped = scores.reshape(len(samples), samples_per_prompt) if samples_per_prompt > 1 else scores
        intermediates = None
        if return_intermediates:
            intermediates = self._rollouts(inference, encoding, samples, samples_per_prompt, outputs)
        return EvaluationOutcome(scores=shaped, rows=rows, total=float(summary["value"]), errors=failed,
                                 metrics={key: float(summary[key]) for key in SUMMARY_FIGURES},
                                 intermediates=intermediates)

    def _rollouts(self, inference: Any, encoding: Any, samples: pd.DataFrame, samples_per_prompt: int,
                  outputs: list[str]) -> list[Intermediate]:
        """Per rollout: prompt ids (chat template applied as the local sampler does) + the answer's ids."""
        tokenizer = tokenizer_of(inference, encoding)
        requests = build_requests(samples, samples_per_prompt, self.system_prompt)
        sequences = [prompt_token_ids(tokenizer, request.messages) + encode_text(tokenizer, output)
                     for request, output in zip(requests, outputs, strict=True)]
        return padded(sequences, pad_id(tokenizer))


class JsonlRolloutEvaluation(RolloutEvaluation):
    """A rollout evaluation over a dataset file the pipeline reads (gen_qa, bedrock or messages JSONL).

    ``checker``: ``exact`` (the pipeline's normalized exact match), ``regex`` (the last match of ``pattern``,
    then exact match, as the ``regex_match`` scorer), ``numeric`` (last number equal within 1e-6), or any scorer
    name of the pipeline (``f1``, ``rouge_l``, ``contains``: the score is the scorer's value).
    """

    def __init__(self, path: str | Path, checker: str = "exact", pattern: str | None = None, *,
                 name: str | None = None, max_tokens: int = 64, format: str = "auto", limit: int | None = None,
                 system_prompt: str | None = None, ignore_case: bool = True) -> None:
        self.path = str(path)
        self._name = name or Path(self.path).stem
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.samples = load_samples(self.path, format, limit)
        kind = CHECKERS.get(checker, checker)
        self._spec = ScorerSpec(name="checker", type=kind, pattern=pattern, ignore_case=ignore_case)
        validate_scorers([self._spec], self.path)
        for row in self.samples.itertuples(index=False):
            if row.reference is None or (kind == "numeric_match" and parse_number(row.reference) is None):
                wanted = "a reference answer" if row.reference is None else "a number in the reference answer"
                raise EvalInputError(f"the {checker} checker needs {wanted}", file=row.source, line=row.line,
                                     field="reference")

    @property
    def name(self) -> str:
        return self._name

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, indx: int) -> tuple[str, str]:
        row = self.samples.iloc[indx]
        return str(row["input"]), str(row["reference"])

    def samples_table(self) -> pd.DataFrame:
        return self.samples

    def max_new_tokens(self, inference: Any) -> int:
        return self.max_tokens

    def clean(self, y_hat: str) -> str:
        return y_hat.strip()

    def value(self, y: str, y_hat: str) -> float:
        """The checker's score of a cleaned answer; NaN (an error row, as in the pipeline) when it gives none."""
        value = score_one(self._spec, y_hat, y).value
        return float("nan") if value is None else value

    def check(self, y: str, y_hat: str) -> bool:
        return self.value(y, y_hat) >= 1.0

    def score(self, ys: list[str], y_hats: list[str]) -> list[float]:
        return [self.value(y, self.clean(y_hat)) for y, y_hat in zip(ys, y_hats, strict=True)]
