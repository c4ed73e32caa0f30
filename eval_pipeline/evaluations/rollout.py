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
from eval_pipeline.data.schemas import SAMPLES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations.base import Evaluation, EvaluationOutcome, Intermediate
from eval_pipeline.evaluations.tokens import encode_text, pad_id, padded, prompt_token_ids, tokenizer_of
from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.runner import build_requests, run_generations
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


def as_sampler(inference: Any) -> Sampler:
    """The sampler behind ``inference``: a Sampler itself, or the one a likelihood scorer wraps."""
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

        Scores have shape ``(n,)``, or ``(n, samples_per_prompt)`` when that is above 1. A failed generation
        scores 0 (and is logged). ``chunk_size`` is accepted for compatibility: batching is the sampler's.
        ``cache`` is a ``RequestCache`` (e.g. the pipeline's); ``model`` labels the generations.
        """
        if samples_per_prompt < 1:
            raise ValueError(f"samples_per_prompt must be at least 1, got {samples_per_prompt}")
        sampler = as_sampler(inference)
        samples = self.samples_table()
        params = GenerationParams(max_tokens=self.max_new_tokens(inference), temperature=temperature, top_p=top_p,
                                  seed=seed, stop=tuple(stop))
        label = model or str(sampler.identity().get("model") or sampler.backend)
        generations, _ = run_generations(samples, label, sampler, params, num_samples=samples_per_prompt,
                                         system_prompt=self.system_prompt, cache=cache)
        expected = dict(zip(samples["sample_id"], samples["reference"], strict=True))
        ys = [expected[sample_id] or "" for sample_id in generations["sample_id"]]
        failed = generations["error"].notna().to_numpy()
        outputs = [output if isinstance(output, str) else "" for output in generations["output"]]
        scores = np.asarray(self.score(ys, outputs), dtype=float)
        if failed.any():
            logger.warning("%s: %d of %d generations failed and score 0 (first: %s)", self.name, int(failed.sum()),
                           len(failed), generations.loc[failed, "error"].iloc[0])
            scores[failed] = 0.0
        rows = generations[["sample_id", "sample_index", "output", "finish_reason", "error"]].assign(
            expected=ys, score=scores)
        shaped = scores.reshape(len(samples), samples_per_prompt) if samples_per_prompt > 1 else scores
        intermediates = None
        if return_intermediates:
            intermediates = self._rollouts(inference, encoding, samples, samples_per_prompt, outputs)
        return EvaluationOutcome(scores=shaped, rows=rows, intermediates=intermediates)

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
        """The checker's score of a cleaned answer."""
        return score_one(self._spec, y_hat, y).value or 0.0

    def check(self, y: str, y_hat: str) -> bool:
        return self.value(y, y_hat) >= 1.0

    def score(self, ys: list[str], y_hats: list[str]) -> list[float]:
        return [self.value(y, self.clean(y_hat)) for y, y_hat in zip(ys, y_hats, strict=True)]
