"""``Evaluator``: runs a list of evaluations on one model and saves their results."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval_pipeline.evaluations.base import Evaluation, check_reduction

RESULTS_FILE = "results.json"


class Evaluator:
    """Holds an inference (a Sampler, a LikelihoodScorer, or a LocalSampler serving both) and evaluations.

    ``evaluate`` returns ``{evaluation.prefix() + "score": value}``; ``run`` saves ``results.json`` (scores and
    each evaluation's extra metrics) and one ``<name>.parquet`` of per-sample rows per evaluation under
    ``output_dir``; ``done`` says whether ``results.json`` is there (it is written last, atomically).
    """

    def __init__(self, inference: Any, evaluations: Sequence[Evaluation], *, output_dir: str | Path | None = None,
                 encoding: Any = None) -> None:
        prefixes = [evaluation.prefix() for evaluation in evaluations]
        repeated = sorted({p for p in prefixes if prefixes.count(p) > 1})
        if repeated:
            raise ValueError(f"two evaluations share the metric prefix {repeated[0]!r}")
        self.inference = inference
        self.evaluations = list(evaluations)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.encoding = encoding

    @property
    def results_path(self) -> Path | None:
        return self.output_dir / RESULTS_FILE if self.output_dir is not None else None

    @property
    def done(self) -> bool:
        """Whether evaluation results already exist."""
        return self.results_path is not None and self.results_path.is_file()

    def evaluate(self, reduce: str = "mean", return_intermediates: bool = False, **kwargs: Any) -> Any:
        """Run all evaluations: ``{prefix + "score": value}`` ("mean"/"sum" → float, "none" → np.ndarray), and
        with ``return_intermediates`` also one list of (ids, mask) per evaluation. ``kwargs`` go to each call."""
        check_reduction(reduce)
        scores: dict[str, Any] = {}
        intermediates: list[list[Any]] = []
        for evaluation in self.evaluations:
            result = evaluation(self.inference, self.encoding, reduce=reduce,
                                return_intermediates=return_intermediates, **kwargs)
            if return_intermediates:
                result, rollouts = result
                intermediates.append(list(rollouts))
            scores[evaluation.prefix() + "score"] = result
        return (scores, intermediates) if return_intermediates else scores

    def run(self, **kwargs: Any) -> None:
        """Run all evaluations and save results to disk (``output_dir`` is required)."""
        if self.output_dir is None:
            raise ValueError("Evaluator.run needs an output_dir")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        scores: dict[str, float | None] = {}
        metrics: dict[str, float | None] = {}
        entries = []
        for evaluation in self.evaluations:
            result = evaluation.outcome(self.inference, self.encoding, **kwargs)
            value = float(evaluation.reduce(result, "mean"))
            scores[evaluation.prefix() + "score"] = _number(value)
            metrics |= {evaluation.prefix() + key: _number(v) for key, v in result.metrics.items()}
            rows_file = f"{_file_name(evaluation.name)}.parquet"
            result.rows.assign(evaluation=evaluation.name).to_parquet(self.output_dir / rows_file, index=False)
            entries.append({"name": evaluation.name, "prefix": evaluation.prefix(), "n": len(evaluation),
                            "score": _number(value), "sum": _number(float(evaluation.reduce(result, "sum"))),
                            "rows": rows_file})
        identity = getattr(self.inference, "identity", None)
        document = {"scores": scores, "metrics": metrics, "evaluations": entries,
                    "inference": identity() if callable(identity) else type(self.inference).__name__,
                    "finished_at": datetime.now(UTC).isoformat()}
        assert self.results_path is not None
        partial = self.results_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
        os.replace(partial, self.results_path)

    def results(self) -> dict[str, Any]:
        """The saved ``results.json``."""
        if not self.done or self.results_path is None:
            raise FileNotFoundError(f"no results under {self.output_dir}")
        return json.loads(self.results_path.read_text())


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "evaluation"
