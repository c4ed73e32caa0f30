"""Scoring a benchmark from inside a training loop: the pipeline's own load → generate → score → aggregate
(``load_samples``, ``run_generations``, ``score_generations``, ``aggregate_scores``), as a metric dict; with
``engine="harbor"``, a Harbor benchmark folder rolled out by the rollout engine (``harbor_engine``)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.data.formats import load_samples
from eval_pipeline.errors import EvalInputError
from eval_pipeline.evaluations.chat_prompts import (
    TEMPLATE_FIELD,
    apply_user_template,
    template_sampler,
    with_template_variables,
)
from eval_pipeline.evaluations.harbor_engine import harbor_record, score_harbor
from eval_pipeline.evaluations.metric_registry import RegisteredMetric, metric_values, parse_metrics
from eval_pipeline.evaluations.run_tables import BenchmarkRun, HarborRun
from eval_pipeline.evaluations.upload import upload
from eval_pipeline.inference.base import GenerationParams, Sampler
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.runner import run_generations
from eval_pipeline.metrics.aggregate import aggregate_scores
from eval_pipeline.scoring.registry import score_generations, validate_scorers
from eval_pipeline.suites.spec import ScorerSpec, Suite

logger = logging.getLogger(__name__)

CHAT_TEMPLATE_KEYS = ("system_prompt", "user_template", "enable_thinking")


@dataclass
class Benchmark:
    """A dataset and the scorers that reward each answer (scorer names or ``ScorerSpec``-shaped dicts).

    ``reward_scorer`` (default: the first scorer) gives the reward behind mean_reward, pass_rate, pass@k and
    pass^k; an item succeeds when its reward is ≥ ``success_threshold``.
    """

    dataset: str | Path
    scorers: list[Any] = field(default_factory=lambda: ["exact_match"])
    format: str = "auto"
    success_threshold: float = 1.0
    reward_scorer: str | None = None
    system_prompt: str | None = None
    breakdown_keys: list[str] = field(default_factory=list)
    limit: int | None = None
    stop: tuple[str, ...] = ()
    seed: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        self.dataset = str(self.dataset)
        self.scorers = [_scorer_spec(scorer) for scorer in self.scorers]
        if not self.scorers:
            raise EvalInputError("a benchmark needs at least one scorer", field="scorers")
        validate_scorers(self.scorers)
        if not math.isfinite(self.success_threshold):
            raise EvalInputError(f"success_threshold must be a finite number, got {self.success_threshold!r}",
                                 field="success_threshold")
        names = [scorer.name for scorer in self.scorers]
        if self.reward_scorer is not None and self.reward_scorer not in names:
            raise EvalInputError(f"reward_scorer {self.reward_scorer!r} is not one of the scorers ({', '.join(names)})",
                                 field="reward_scorer")
        self.stop = tuple(self.stop)

    @classmethod
    def from_suite(cls, suite: Suite | str | Path) -> Benchmark:
        """The suite's dataset (format, limit), scorers, breakdown keys, system prompt, stop strings and seed."""
        if not isinstance(suite, Suite):
            from eval_pipeline.suites.loading import find_suite, load_suite

            suite = load_suite(suite) if isinstance(suite, Path) else find_suite(suite)
        gen = suite.generation
        return cls(dataset=suite.resolve_uri(suite.dataset.uri), scorers=list(suite.scorers),
                   format=suite.dataset.format, system_prompt=gen.system_prompt,
                   breakdown_keys=list(suite.breakdown_keys), limit=suite.dataset.limit, stop=tuple(gen.stop),
                   seed=gen.seed, name=suite.suite)

    @property
    def reward(self) -> str:
        """The name of the reward scorer."""
        return self.reward_scorer or self.scorers[0].name

    def load(self, limit: int | None = None) -> pd.DataFrame:
        """The samples table, cut to the smaller of the benchmark's and the given limit."""
        caps = [value for value in (self.limit, limit) if value is not None]
        return load_samples(self.dataset, self.format, min(caps) if caps else None)


@dataclass
class BenchmarkEvaluator:
    """Score a ``Benchmark`` against the live sampler, every ``run_every`` steps of a training loop.

    ``metrics``: registered names (``mean_reward``, ``pass_rate``, ``avg``, ``pass@k``, ``pass^k``); empty →
    mean_reward + pass_rate. ``chat_template``: ``system_prompt`` (else the benchmark's), ``user_template`` (the
    item's prompt goes where ``{prompt}`` or ``{input}`` stands) and ``enable_thinking`` (handed to samplers with
    a ``chat_template_kwargs`` dict; recorded otherwise). ``store``: an MLflow tracking URI, a folder for Parquet,
    or an object with ``log(record)`` (e.g. the Dagster MLflow resource); uploads are best effort.
    ``n_concurrent`` is set on samplers that have it; a local sampler renders ``enable_thinking`` in its chat
    template. ``cache`` (a ``RequestCache`` or its path) shares completions with the pipeline: same request keys.

    ``engine="harbor"``: ``benchmark.dataset`` is a folder of Harbor task folders, scored through the rollout
    engine (``harbor_engine``): each task rolled out ``num_samples`` times, ``n_concurrent`` trials in flight
    sharing the one sampler, each trial working in a copy of the task's environment files under ``workspace_dir``
    (a temporary folder when None) with the sandbox's tools for at most ``max_turns`` turns, its reward the task's
    verifier. ``evaluate(sampler)`` uses the sampler given; ``evaluate_harbor(model_path)`` loads the checkpoint
    (one sampler per path, kept) with ``tokenizer`` (a tokenizer or a path; None: the checkpoint's) rendering the
    prompts. Any other ``engine`` is the sampler path.
    """

    name: str
    benchmark: Benchmark
    tokenizer: Any = None
    run_every: int = 0
    max_tokens: int = 256
    temperature: float = 0.0
    breakdown_keys: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    chat_template: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    engine: str = ""
    model_name: str | None = None
    workspace_dir: Any = None
    num_samples: int = 1
    n_concurrent: int = 8
    store: Any = None
    run_id: str | None = None
    benchmark_id: str | None = None
    top_p: float = 1.0
    cache: Any = None
    max_turns: int = 8
    last_run: BenchmarkRun | HarborRun | None = field(default=None, init=False, repr=False, compare=False)
    _samplers: dict[Any, Sampler] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parse_metrics(self.metrics)
        for label, value, least in (("run_every", self.run_every, 0), ("max_tokens", self.max_tokens, 1),
                                    ("num_samples", self.num_samples, 1), ("n_concurrent", self.n_concurrent, 1),
                                    ("max_turns", self.max_turns, 1)):
            if not isinstance(value, int) or value < least:
                raise EvalInputError(f"must be an integer ≥ {least}, got {value!r}", field=label)
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise EvalInputError(f"must be a positive integer or None, got {self.limit!r}", field="limit")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise EvalInputError("temperature must be ≥ 0 and top_p in (0, 1]", field="temperature")
        unknown = sorted(set(self.chat_template) - set(CHAT_TEMPLATE_KEYS))
        if unknown:
            raise EvalInputError(f"unknown keys {unknown}; allowed: {', '.join(CHAT_TEMPLATE_KEYS)}",
                                 field="chat_template")
        template = self.chat_template.get("user_template")
        if template is not None and not TEMPLATE_FIELD.search(str(template)):
            raise EvalInputError("must contain {prompt} or {input}", field="chat_template.user_template")
        if self.engine == "harbor" and not Path(self.benchmark.dataset).is_dir():
            raise EvalInputError(f"engine 'harbor' scores a folder of Harbor task folders; {self.benchmark.dataset!r} "
                                 "is not a folder", field="benchmark.dataset")

    # -- scheduling ----------------------------------------------------------------------------------------------

    def is_due(self, step: int | None) -> bool:
        """Whether to evaluate at ``step``: never when ``run_every`` is 0 (disabled) or the step is unknown or 0
        (no evaluation before the first update); otherwise at every positive multiple of ``run_every``."""
        return bool(self.run_every) and step is not None and step > 0 and step % self.run_every == 0

    # -- evaluation ----------------------------------------------------------------------------------------------

    @property
    def system_prompt(self) -> str | None:
        return self.chat_template.get("system_prompt") or self.benchmark.system_prompt

    def generation_params(self) -> GenerationParams:
        return GenerationParams(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                                seed=self.benchmark.seed, stop=self.benchmark.stop)

    def model_label(self, sampler: Sampler) -> str:
        return self.model_name or str(sampler.identity().get("model") or sampler.backend)

    def evaluate(self, sampler: Sampler, *, model_path: str | None = None, step: int | None = None) -> dict[str, float]:
        """Generate, score and aggregate; return ``{metric: value}`` plus ``metric/<key>=<value>`` breakdowns.

        The tables stay in ``last_run``; the upload to ``store`` never raises (a failure is a logged warning).
        """
        engine = _ENGINES.get(self.engine)
        if engine is not None:
            return engine(self, sampler, model_path=model_path, step=step)
        samples = apply_user_template(self.benchmark.load(self.limit), self.chat_template.get("user_template"))
        sampler = self._configure(sampler)
        label = self.model_label(sampler)
        cache, owned = _open_cache(self.cache)
        try:
            generations, stats = run_generations(samples, label, sampler, self.generation_params(),
                                                 num_samples=self.num_samples, system_prompt=self.system_prompt,
                                                 cache=cache)
        finally:
            if owned and cache is not None:
                cache.close()
        scores = score_generations(samples, generations, self.benchmark.scorers)
        keys = list(self.breakdown_keys or self.benchmark.breakdown_keys)
        table = aggregate_scores(self.name, samples, scores, keys)
        metrics = parse_metrics(self.metrics)
        values = scorer_metric_values(metrics, samples, scores, table, self.benchmark.reward,
                                      self.benchmark.success_threshold, keys)
        failed = int(scores.loc[scores["scorer"] == self.benchmark.reward, "error"].notna().sum())
        if failed:
            logger.warning("%s: %d of %d answers could not be scored (not averaged in)", self.name, failed,
                           len(generations))
        run = BenchmarkRun(step, samples, generations, scores, table, values, stats)
        self.last_run = run
        if self.store is not None:
            upload(self, run, label, model_path, metrics)
        return values

    def evaluate_harbor(self, model_path: str, *, step: int | None = None) -> dict[str, float]:
        """Score the Harbor benchmark off the checkpoint at ``model_path`` (a local sampler, built once per path
        and shared by every trial); the metric dict, and the upload when ``store`` is set."""
        key = ("checkpoint", str(model_path))
        if key not in self._samplers:
            self._samplers[key] = template_sampler(str(model_path), self.tokenizer, self._template_variables())
        return self._evaluate_harbor_with(self._samplers[key], model_path=model_path, step=step)

    _evaluate_harbor = evaluate_harbor
    """The seed's name for it."""

    def _evaluate_harbor_with(self, sampler: Sampler, *, model_path: str | None = None,
                              step: int | None = None) -> dict[str, float]:
        sampler = self._configure(sampler)
        label = self.model_label(sampler)
        metrics = parse_metrics(self.metrics)
        options: dict[str, Any] = {"workspace_dir": None if self.workspace_dir is None else str(self.workspace_dir)}
        if self.system_prompt is not None:
            options["system_prompt"] = self.system_prompt
        run = score_harbor(self.benchmark.dataset, sampler, name=self.name, model=label,
                           params=self.generation_params(), metrics=metrics, num_samples=self.num_samples,
                           n_concurrent=self.n_concurrent, limit=_smallest(self.benchmark.limit, self.limit),
                           success_threshold=self.benchmark.success_threshold,
                           breakdown_keys=list(self.breakdown_keys or self.benchmark.breakdown_keys),
                           environment_options=options, user_template=self.chat_template.get("user_template"),
                           max_turns=self.max_turns, step=step, seed=self.benchmark.seed)
        errors = int(run.rollouts["error"].notna().sum())
        if errors:
            logger.warning("%s: %d of %d trials gave no reward (not averaged in): %s", self.name, errors,
                           len(run.rollouts), run.rollouts["error"].dropna().iloc[0])
        self.last_run = run
        if self.store is not None:
            upload(self, run, label, model_path, metrics, record_for=harbor_record)
        return run.values

    def _template_variables(self) -> dict[str, Any]:
        thinking = self.chat_template.get("enable_thinking")
        return {} if thinking is None else {"enable_thinking": bool(thinking)}

    def _configure(self, sampler: Sampler) -> Sampler:
        """The sampler to use: ``n_concurrent`` set where it has one, ``enable_thinking`` in its chat template
        kwargs, or for a local sampler in its chat template (a sampler over the same loaded model, kept)."""
        if hasattr(sampler, "n_concurrent"):
            sampler.n_concurrent = self.n_concurrent
        variables = self._template_variables()
        if variables and isinstance(getattr(sampler, "chat_template_kwargs", None), dict):
            sampler.chat_template_kwargs.update(variables)
        elif variables and getattr(sampler, "backend", None) == "local" and hasattr(sampler, "tokenizer"):
            key = ("local", id(sampler), json.dumps(variables, sort_keys=True))
            kept = self._samplers.get(key)
            if kept is None or getattr(kept, "source_sampler", None) is not sampler:  # an id reused after GC
                kept = self._samplers[key] = _local_with_variables(sampler, variables)
            return kept
        return sampler


_ENGINES = {"harbor": BenchmarkEvaluator._evaluate_harbor_with}
"""Engines other than the sampler path, by ``engine`` name."""


def _smallest(*limits: int | None) -> int | None:
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


def _local_with_variables(sampler: Any, variables: dict[str, Any]) -> Sampler:
    """A local sampler over ``sampler``'s loaded model whose chat template sees ``variables``."""
    from eval_pipeline.inference.local import LocalSampler

    tokenizer = with_template_variables(sampler.tokenizer, variables)
    revision = json.dumps({"of": sampler.identity(), "template": variables}, sort_keys=True, default=str)
    wrapped = LocalSampler.from_loaded(sampler.model, tokenizer, name=sampler.model_name,
                                       batch_size=sampler.batch_size, revision=revision)
    for setting in ("chat_template", "max_length", "add_bos_token"):  # the sampler's prompt settings, where it has them
        if getattr(sampler, setting, None) is not None:
            setattr(wrapped, setting, getattr(sampler, setting))
    wrapped.source_sampler = sampler  # type: ignore[attr-defined]
    return wrapped


def scorer_metric_values(metrics: list[RegisteredMetric], samples: pd.DataFrame, scores: pd.DataFrame,
                         table: pd.DataFrame, reward: str, success_threshold: float,
                         breakdown_keys: list[str]) -> dict[str, float]:
    """The metric dict: mean_reward read from the aggregated table (the pipeline's number), the others from the
    reward scorer's per-item rewards; breakdowns as ``<metric>/<key>=<value>``."""
    rows = scores[(scores["scorer"] == reward) & scores["error"].isna()].sort_values("sample_index", kind="stable")
    rewards = {sample_id: group["score"].to_numpy(dtype=float)
               for sample_id, group in rows.groupby("sample_id", sort=False)}
    return metric_values(metrics, samples, rewards, table[table["metric"] == reward], success_threshold,
                         breakdown_keys)


def _scorer_spec(scorer: Any) -> ScorerSpec:
    if isinstance(scorer, ScorerSpec):
        return scorer
    if isinstance(scorer, str):
        return ScorerSpec(name=scorer)
    if isinstance(scorer, dict):
        return ScorerSpec.model_validate(scorer)
    raise EvalInputError(f"a scorer is a name, a dict or a ScorerSpec, got {type(scorer).__name__}", field="scorers")


def _open_cache(cache: Any) -> tuple[RequestCache | None, bool]:
    """The request cache to use and whether this call opened it (and must close it)."""
    if cache is None or isinstance(cache, RequestCache):
        return cache, False
    return RequestCache(cache), True
