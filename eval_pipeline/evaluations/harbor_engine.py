"""The training-loop evaluator's ``harbor`` engine: a Harbor benchmark folder scored through the rollout engine.

The same code as a rollout suite with ``environment: {kind: harbor}``: the tasks read by ``harbor_samples``, each
rolled out ``num_samples`` times by ``run_rollouts`` (``n_concurrent`` trials in flight, every one calling the one
sampler it is given), each trial's reward the task's verifier, and the ``rollouts`` table aggregated by
``rollout_metrics`` (the pipeline's METRICS table). The evaluator's metric dict is read from it: ``mean_reward``
from the table, ``pass_rate``, ``avg``, ``pass@k`` and ``pass^k`` from each task's non-error trial rewards, as for
the sampler engine. An errored trial (a verifier that wrote no reward) is excluded, never counted as 0.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.agents.harbor_env import HarborKind
from eval_pipeline.agents.harbor_tasks import harbor_samples
from eval_pipeline.agents.model_agent import model_agent_factory, model_agent_identity
from eval_pipeline.agents.rollout import RolloutSettings
from eval_pipeline.agents.runner import run_rollouts
from eval_pipeline.evaluations.chat_prompts import apply_user_template
from eval_pipeline.evaluations.metric_registry import RegisteredMetric, metric_values
from eval_pipeline.evaluations.run_tables import HarborRun
from eval_pipeline.evaluations.upload import UploadSource
from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.metrics.rollout_metrics import rollout_metrics
from eval_pipeline.tasks.rollout import ROLLOUT, agent_tasks
from eval_pipeline.tracking.mlflow_log import EvaluationRecord

logger = logging.getLogger(__name__)

DEFAULT_MAX_TURNS = 8


def score_harbor(folder: str | Path, sampler: Sampler, *, name: str, model: str, params: GenerationParams,
                 metrics: list[RegisteredMetric], num_samples: int = 1, n_concurrent: int = 8,
                 limit: int | None = None, success_threshold: float = 1.0, breakdown_keys: Sequence[str] = (),
                 environment_options: Mapping[str, Any] | None = None, user_template: Any = None,
                 max_turns: int = DEFAULT_MAX_TURNS, step: int | None = None, seed: int = 0) -> HarborRun:
    """Roll every task out ``num_samples`` times and aggregate, as the rollout suite does."""

    samples = harbor_samples(folder, limit, breakdown_keys)
    prompts = apply_user_template(samples, user_template)
    options = dict(environment_options or {})
    config = {"kind": HarborKind.name, "options": options}
    make_environment = HarborKind.factory(config)
    run = run_rollouts(
        agent_tasks(prompts), model=model, make_agent=model_agent_factory(sampler, params),
        make_environment=make_environment, agent_identity=model_agent_identity(sampler, params),
        environment=HarborKind.label(config),
        environment_identity={**config, **HarborKind.fingerprint(config)}, eval_group_size=num_samples,
        settings=RolloutSettings(max_turns=max_turns, success_threshold=success_threshold),
        concurrency=n_concurrent, row_hashes=dict(zip(prompts["sample_id"], prompts["row_hash"], strict=True)))
    frame = run.frame
    scores = ROLLOUT.score(None, samples, frame)  # type: ignore[arg-type]  # the suite is not read
    ks = sorted({metric.k for metric in metrics if metric.k is not None} or {1})
    table = rollout_metrics(frame, samples, pass_k_values=ks, breakdown_keys=list(breakdown_keys), suite=name,
                            seed=seed)
    values = harbor_values(metrics, samples, frame, table, success_threshold, breakdown_keys)
    return HarborRun(step, samples, frame, scores, table, values, run.stats)


def harbor_values(metrics: list[RegisteredMetric], samples: pd.DataFrame, rollouts: pd.DataFrame,
                  table: pd.DataFrame, success_threshold: float, breakdown_keys: Sequence[str]) -> dict[str, float]:
    """The metric dict (``<metric>/<key>=<value>`` for breakdowns) from the non-error trials' rewards."""
    valid = rollouts[rollouts["error"].isna()].sort_values("sample_index", kind="stable")
    rewards = {sample_id: group["reward"].to_numpy(dtype=float) for sample_id, group in valid.groupby("sample_id")}
    return metric_values(metrics, samples, rewards, table[table["metric"] == "mean_reward"], success_threshold,
                         breakdown_keys)


def harbor_record(evaluator: UploadSource, run: HarborRun, model: str, model_path: str | None,
                  metrics: list[RegisteredMetric]) -> EvaluationRecord:
    """The evaluation as the pipeline's record: params, one item row per trial (the rollout suite's items), the
    METRICS table and the rollouts' usage."""
    benchmark = evaluator.benchmark
    params = {"step": run.step, "model_path": model_path, "engine": "harbor", "limit": evaluator.limit,
              "metrics": [m.name for m in metrics], "num_samples": evaluator.num_samples,
              "benchmark": {"dataset": str(benchmark.dataset), "success_threshold": benchmark.success_threshold,
                            "benchmark_id": evaluator.benchmark_id},
              "generation": dict(evaluator.generation_params().__dict__), "chat_template": evaluator.chat_template}
    tags = {"evaluator": evaluator.name, "engine": "harbor", "step": "" if run.step is None else str(run.step)}
    if evaluator.benchmark_id:
        tags["benchmark_id"] = evaluator.benchmark_id
    if evaluator.run_id:
        tags["mlflow.parentRunId"] = evaluator.run_id
    items = ROLLOUT.items(run.samples, run.rollouts, run.scores, None).assign(step=run.step)
    digest = hashlib.sha256("".join(run.samples["row_hash"]).encode()).hexdigest()[:16]
    return EvaluationRecord(suite=evaluator.name, model=model, params=params, dataset_uri=str(benchmark.dataset),
                            dataset_digest=digest, samples=run.samples, items=items, metrics=run.metrics, tags=tags,
                            usage=ROLLOUT.usage(run.rollouts))


