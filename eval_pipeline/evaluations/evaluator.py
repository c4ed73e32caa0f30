"""``Evaluator``: runs a list of evaluations on one model and saves their results."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic

from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations.base import Evaluation, check_reduction
from eval_pipeline.evaluations.job import InferenceJob, M, runner_of
from eval_pipeline.evaluations.sources import (
    DEFAULT_BATCH_SIZE,
    CheckpointConfig,
    ExecutionSpec,
    as_spec,
    checkpoint_config,
    checkpoint_path,
    is_config,
    is_inference,
    live_sampler,
    overlay,
    setting,
    trainer_batch_size,
    trainer_name,
    trainer_output_dir,
    trainer_step,
    trainer_tokenizer,
)
from eval_pipeline.evaluations.spec_job import job_parts

RESULTS_FILE = "results.json"


class Evaluator(InferenceJob[ExecutionSpec, M], Generic[M]):
    """Holds an inference (a Sampler, a LikelihoodScorer, or a LocalSampler serving both) and evaluations.

    ``Evaluator(spec)``: an ``ExecutionSpec`` naming the checkpoint, the evaluations, ``output_dir``, batch size,
    device and dtype (see ``spec_job``); ``Evaluator(inference, evaluations, output_dir=…, encoding=…)``: a
    Sampler or scorer already built. ``config`` is the spec (None in the second form).

    ``evaluate`` returns ``{evaluation.prefix() + "score": value}``; ``run`` saves ``results.json`` (scores and
    each evaluation's extra metrics, errors among them) and one ``<name>.parquet`` of per-sample rows per
    evaluation under ``output_dir``; ``done`` says whether ``results.json`` is there (it is written last,
    atomically). Calling the evaluator (``evaluator()``, or ``evaluator(model)`` for another model) runs the
    evaluations, saves them when there is an ``output_dir``, and returns the scores. ``from_trainer`` and
    ``from_checkpoint`` build one from a training loop's trainer or a saved checkpoint. With ``resume``, results
    already saved are returned without running anything again.
    """

    def __init__(self, spec: ExecutionSpec | Any, evaluations: Sequence[Evaluation] | None = None, *,
                 output_dir: str | Path | None = None, encoding: Any = None, resume: bool = False) -> None:
        parts = job_parts(spec, evaluations, output_dir, encoding)
        prefixes = [evaluation.prefix() for evaluation in parts.evaluations]
        repeated = sorted({p for p in prefixes if prefixes.count(p) > 1})
        if repeated:
            raise ValueError(f"two evaluations share the metric prefix {repeated[0]!r}")
        self.config = parts.spec
        self.inference = parts.inference
        self.evaluations = parts.evaluations
        self._output_dir = parts.output_dir
        self.encoding = parts.encoding
        self.resume = resume
        self.trainer: Any = None
        """The trainer of ``from_trainer``: its current step names the default output folder."""

    @classmethod
    def from_trainer(cls, trainer: Any, evaluations: Sequence[Evaluation] | Any = None, encoding: Any = None,
                     config: Any = None, *, output_dir: str | Path | None = None, batch_size: int | None = None,
                     resume: bool = False) -> Evaluator[Any]:
        """An evaluator of the trainer's live model (a transformers ``Trainer``, or any object with ``model`` and a
        ``processing_class``/``tokenizer``), on the model's device, in eval mode while it runs (then back).

        ``evaluations`` (or ``config.evaluations``: ``config`` is any object or mapping, also given second as in
        ``from_trainer(trainer, config)``, whose ``evaluations``, ``encoding``, ``output_dir`` and ``batch_size``
        are read when not given here). The batch size defaults to the trainer's
        ``args.per_device_eval_batch_size``; results go to ``<args.output_dir>/evaluations/step-<global_step>``
        (the step when the evaluator runs) unless ``output_dir`` says otherwise.
        """
        if is_config(evaluations):
            config, evaluations = evaluations, None
        chosen = list(evaluations if evaluations is not None else setting(config, "evaluations", ()))
        if not chosen:
            raise EvalInputError("an evaluator needs at least one evaluation", field="evaluations")
        encoding = encoding if encoding is not None else setting(config, "encoding")
        model = getattr(trainer, "model", None)
        if model is None:
            raise EvalInputError(f"{type(trainer).__name__} has no model", field="trainer")
        size = batch_size or setting(config, "batch_size") or trainer_batch_size(trainer)
        sampler = live_sampler(model, trainer_tokenizer(trainer, encoding), name=trainer_name(trainer),
                               batch_size=int(size), revision=None)
        evaluator = cls(sampler, chosen, output_dir=output_dir or setting(config, "output_dir"), encoding=encoding,
                        resume=resume)
        evaluator.trainer = trainer
        return evaluator

    @classmethod
    def from_checkpoint(cls, suffix: str | Path, spec: ExecutionSpec | Sequence[Evaluation],
                        runtime_cfg: Any | None = None,
                        resume: bool = False) -> tuple[Evaluator[Any], CheckpointConfig]:
        """An evaluator of a saved checkpoint, and the checkpoint's config.

        ``suffix``: the checkpoint folder (``save_pretrained``'s, e.g. a Trainer's ``checkpoint-500``) under
        ``spec.checkpoint_dir``, or a path; ``spec``: an ``ExecutionSpec`` (or just the evaluations);
        ``runtime_cfg``: a mapping or object overriding the spec's fields (``batch_size``, ``device``, …);
        ``resume``: when results are saved already, calling the evaluator returns them and runs nothing.
        Results go to ``spec.output_dir``, by default ``<checkpoint>/evaluations``. The same as
        ``Evaluator(spec)`` with ``spec.checkpoint`` set to the folder.
        """
        chosen = overlay(as_spec(spec), runtime_cfg)
        chosen = dataclasses.replace(chosen, checkpoint=checkpoint_path(suffix, chosen).absolute())
        evaluator: Evaluator[Any] = cls(chosen, resume=resume)
        return evaluator, checkpoint_config(Path(chosen.checkpoint), chosen)  # type: ignore[arg-type]

    @property
    def output_dir(self) -> Path | None:
        """Where results are saved: as given, else (from a trainer) the folder of the trainer's current step."""
        if self._output_dir is None and self.trainer is not None:
            return trainer_output_dir(self.trainer)
        return self._output_dir

    @output_dir.setter
    def output_dir(self, value: str | Path | None) -> None:
        self._output_dir = Path(value) if value is not None else None

    @property
    def results_path(self) -> Path | None:
        return self.output_dir / RESULTS_FILE if self.output_dir is not None else None

    @property
    def done(self) -> bool:
        """Whether evaluation results already exist."""
        return self.results_path is not None and self.results_path.is_file()

    def __call__(self, inference: Any = None, **kwargs: Any) -> dict[str, float | None]:
        """Run all evaluations (on ``inference`` when given: a Sampler or LikelihoodScorer, or a transformers model
        read with this evaluator's tokenizer), save them when there is an ``output_dir``, and return the scores
        ``{prefix + "score": mean}``. With ``resume`` and results saved (of the evaluator's own model), those are
        returned and nothing runs. ``kwargs`` go to each evaluation (``temperature``, ``top_p``, ``chunk_size``, …)."""
        if inference is None and self.resume and self.done:
            return dict(self.results()["scores"])
        target = self._inference(inference)
        if self.output_dir is None:
            scores = self._evaluate(target, "mean", False, kwargs)[0]
            return {key: _number(float(value)) for key, value in scores.items()}
        return self._run(target, kwargs)["scores"]

    def evaluate(self, reduce: str = "mean", return_intermediates: bool = False, **kwargs: Any) -> Any:
        """Run all evaluations: ``{prefix + "score": value}`` ("mean"/"sum" → float, "none" → np.ndarray), and
        with ``return_intermediates`` also one list of (ids, mask) per evaluation. ``kwargs`` go to each call."""
        check_reduction(reduce)
        scores, intermediates = self._evaluate(self._inference(None), reduce, return_intermediates, kwargs)
        return (scores, intermediates) if return_intermediates else scores

    def _evaluate(self, inference: Any, reduce: str, return_intermediates: bool,
                  kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[list[Any]]]:
        scores: dict[str, Any] = {}
        intermediates: list[list[Any]] = []
        for evaluation in self.evaluations:
            result = evaluation(inference, self.encoding, reduce=reduce, return_intermediates=return_intermediates,
                                **kwargs)
            if return_intermediates:
                result, rollouts = result
                intermediates.append(list(rollouts))
            scores[evaluation.prefix() + "score"] = result
        return scores, intermediates

    def run(self, **kwargs: Any) -> None:
        """Run all evaluations and save results to disk (``output_dir`` is required). With ``resume`` and results
        saved already, nothing runs."""
        if self.output_dir is None:
            raise ValueError("Evaluator.run needs an output_dir")
        if self.resume and self.done:
            return
        self._run(self._inference(None), kwargs)

    def _run(self, inference: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        output_dir = self.output_dir
        assert output_dir is not None
        output_dir.mkdir(parents=True, exist_ok=True)
        scores: dict[str, float | None] = {}
        metrics: dict[str, float | None] = {}
        entries = []
        for evaluation in self.evaluations:
            result = evaluation.outcome(inference, self.encoding, **kwargs)
            value = float(evaluation.reduce(result, "mean"))
            scores[evaluation.prefix() + "score"] = _number(value)
            metrics |= {evaluation.prefix() + key: _number(v) for key, v in result.metrics.items()}
            rows_file = f"{_file_name(evaluation.name)}.parquet"
            result.rows.assign(evaluation=evaluation.name).to_parquet(output_dir / rows_file, index=False)
            entries.append({"name": evaluation.name, "prefix": evaluation.prefix(), "n": len(evaluation),
                            "score": _number(value), "sum": _number(float(evaluation.reduce(result, "sum"))),
                            "errors": result.errors, "rows": rows_file})
        identity = getattr(inference, "identity", None)
        document = {"scores": scores, "metrics": metrics, "evaluations": entries,
                    "inference": identity() if callable(identity) else type(inference).__name__,
                    "finished_at": datetime.now(UTC).isoformat()}
        step = trainer_step(self.trainer) if self.trainer is not None else None
        if step is not None:
            document["step"] = step
        results_path = output_dir / RESULTS_FILE
        partial = results_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
        os.replace(partial, results_path)
        return document

    def _inference(self, inference: Any) -> Any:
        """``inference`` (a Sampler or scorer, or a transformers model wrapped with this evaluator's tokenizer),
        else the evaluator's own. A live model has no revision: its answers are never cached (its weights change)."""
        if inference is None:
            return self.inference
        inference = runner_of(inference)
        if is_inference(inference):
            return inference
        tokenizer = getattr(self.inference, "tokenizer", None) or self.encoding
        if tokenizer is None or not callable(getattr(inference, "forward", None)):
            raise TypeError(f"cannot evaluate a {type(inference).__name__}: pass a Sampler, a LikelihoodScorer or a "
                            "transformers model (with a tokenizer on the evaluator)")
        batch_size = getattr(self.inference, "batch_size", None) or DEFAULT_BATCH_SIZE
        return live_sampler(inference, tokenizer, name=str(getattr(inference, "name_or_path", "") or "model"),
                            batch_size=batch_size, revision=None)

    def results(self) -> dict[str, Any]:
        """The saved ``results.json``."""
        if not self.done or self.results_path is None:
            raise FileNotFoundError(f"no results under {self.output_dir}")
        return json.loads(self.results_path.read_text())


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "evaluation"
