"""``task: rollout``: each task is rolled out ``eval_group_size`` times, by the model under test acting in a local
environment with its tools, or by an agent service (an AgentCore runtime, a Lambda function) we converse with; the
rewards give mean reward, success rate, pass@k and pass^k with task-level bootstrap intervals."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd

from eval_pipeline.agents.conversation_env import ConversationEnvironment, verifier_problem
from eval_pipeline.agents.environment import Agent, AgentTask, Environment
from eval_pipeline.agents.model_agent import model_agent_factory, model_agent_identity
from eval_pipeline.agents.registry import ENVIRONMENTS
from eval_pipeline.agents.rollout import RolloutSettings
from eval_pipeline.agents.rollout_store import RolloutStore
from eval_pipeline.agents.runner import run_rollouts
from eval_pipeline.agents.spec import EnvironmentSpec, RolloutSpec
from eval_pipeline.agents.user_simulator import UserSimulator
from eval_pipeline.data.formats import load_samples
from eval_pipeline.data.messages import final_reply
from eval_pipeline.data.schemas import SCORES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backend_registry import backend
from eval_pipeline.inference.backends import build_sampler
from eval_pipeline.inference.base import GenerationParams
from eval_pipeline.inference.planning import GenerationPlan
from eval_pipeline.metrics.ranges import UNBOUNDED, ValueRange
from eval_pipeline.metrics.rollout_metrics import rollout_metrics
from eval_pipeline.progress import Progress
from eval_pipeline.suites.checks import SuiteProblem, field_path
from eval_pipeline.tasks.base import Production
from eval_pipeline.tracking.rollout_traces import log_rollout_traces

if TYPE_CHECKING:
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.suites.spec import ModelSpec, Suite

ROLLOUT_SCORERS = ("reward", "success")
"""The score rows of a rollout: its reward, and 1/0 for success (reward ≥ success_threshold)."""


class RolloutTask:
    """Agents rolled out in environments; the production table is ``rollouts``."""

    name = "rollout"
    production_stage = "rollouts"
    judgeable = False
    suite_keys = ("environment", "rollout", "user_simulator")

    def version_code(self, suite: Suite) -> dict[str, tuple[str, ...]]:
        """The code behind a rollout beyond the usual (``tasks/stage_versions.py``): the agents package and a
        local environment's own module (``module:Class``, or a file relative to the project root)."""
        environment = suite.environment
        target = environment.path.rsplit(":", 1)[0] if environment is not None and environment.path else None
        if target is not None and (target.endswith(".py") or "/" in target):
            target = str(suite.resolve_path(target))
        return {"production": ("eval_pipeline.agents", *((target,) if target else ()))}

    def validate(self, suite: Suite) -> None:
        if suite.environment is None:
            raise ValueError("task 'rollout' needs an 'environment': {kind: python, path: 'module:Class'} for a local "
                             "environment, or {kind: agentcore, arn: …} / {kind: lambda, arn: …} for an agent service")

    def problems(self, suite: Suite) -> Iterator[SuiteProblem]:
        """The environment's own checks (it imports, its tools' schemas are JSON schema, an ARN has its shape) and
        the sampling temperature each model's backend accepts: found when the suite loads."""
        environment, settings = _environment(suite), _settings(suite)
        kind = ENVIRONMENTS.get(environment.kind)
        try:
            kind.validate(_kind_config(environment), root=suite.base_dir, file=suite.source_path, field="environment")
        except EvalInputError as exc:
            yield SuiteProblem(exc.reason, field_path(exc.field or "environment"), file=suite.source_path)
            return
        reader = getattr(kind, "load_samples", None)
        if reader is not None:  # a kind that reads its own tasks (harbor): its dataset is checked as it loads
            reader(suite.resolve_uri(suite.dataset.uri), suite.dataset.format, suite.dataset.limit,
                   breakdown_keys=suite.breakdown_keys)  # EvalInputError names the benchmark's file and field
        if environment.verifier is not None:
            problem = verifier_problem(environment.verifier)
            if _policy(kind):  # an environment the model acts in rewards the episode itself
                problem = (f"a {environment.kind} environment gives its own reward; 'verifier' rewards the last "
                           "reply of an agent service (agentcore, lambda): drop it, or reward in the environment's "
                           "reward()")
            if problem is not None:
                yield SuiteProblem(f"verifier: {problem}", ("environment", "verifier"), file=suite.source_path)
                return
        for model in suite.models:
            problem = backend(model.backend).temperature_problem(settings.sampling_temperature)
            if problem is not None:
                yield SuiteProblem(f"{problem}, used by model {model.name!r}", ("rollout", "sampling_temperature"),
                                   file=suite.source_path)
                return
        if _policy(kind):
            for index, model in enumerate(suite.models):
                if not backend(model.backend).tools:
                    yield SuiteProblem(f"model {model.name!r} is on backend {model.backend!r}, which cannot call "
                                       f"tools; a {environment.kind} environment needs the model to act with its "
                                       f"tools", ("models", index, "backend"), file=suite.source_path)
                    return

    def stages(self, suite: Suite) -> tuple[str, ...]:
        return ("samples", self.production_stage, "scores", "metrics")

    def load_samples(self, suite: Suite, limit: int | None = None,
                     sample_ids: list[str] | None = None) -> pd.DataFrame:
        """The dataset as the samples table: read by the environment kind when it reads its own tasks (its
        ``load_samples``: a harbor benchmark folder), else converted from its files as for every task kind."""
        reader = getattr(ENVIRONMENTS.get(_environment(suite).kind), "load_samples", None) or load_samples
        return reader(suite.resolve_uri(suite.dataset.uri), suite.dataset.format, limit,
                      breakdown_keys=suite.breakdown_keys)

    def score_ranges(self, suite: Suite) -> dict[str, ValueRange]:
        """A reward is whatever the environment or service gives (τ-bench's are 0 or 1; others are not)."""
        return {"reward": UNBOUNDED}

    def item_metrics(self, suite: Suite) -> tuple[str, ...]:
        """``reward`` and ``success`` per rollout, averaged over a task's rollouts: what a release gate pairs by
        task."""
        return ROLLOUT_SCORERS

    def pool(self, suite: Suite) -> str:
        """``rollouts-<environment kind>``: rollouts against one service share one limit."""
        return f"rollouts-{_environment(suite).kind}"

    def produce(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                log: Callable[[str], None]) -> Production:
        settings, environment = _settings(suite), _environment(suite)
        kind = ENVIRONMENTS.get(environment.kind)
        make_agent, agent_identity = _agent(suite, model, samples, kind, cache)
        store = RolloutStore()
        progress = Progress(f"{suite.suite}/{model.name} rollouts", log, unit="rollout")
        try:
            run = run_rollouts(
                agent_tasks(samples), model=model.name, make_agent=make_agent,
                make_environment=_environment_factory(suite, kind), agent_identity=agent_identity,
                environment=kind.label(_kind_config(environment)),
                environment_identity=_environment_identity(suite, kind),
                eval_group_size=settings.eval_group_size,
                settings=RolloutSettings(max_turns=settings.max_turns, call_timeout_s=settings.call_timeout_s,
                                         success_threshold=settings.success_threshold),
                user=_user(suite, samples, cache), concurrency=settings.concurrency,
                stopping_condition=settings.stopping_condition, store=store,
                row_hashes=dict(zip(samples["sample_id"], samples["row_hash"], strict=True)), on_progress=progress)
        finally:
            progress.close()
            store.close()
        frame, stats = run.frame, run.stats
        valid = frame[frame["error"].isna()]
        return Production(frame, {
            "rollouts": stats.total, "from_store": stats.stored, "ran": stats.ran, "errors": stats.errors,
            "budget_errors": stats.budget,
            "success_rate": float(valid["success"].astype(float).mean()) if len(valid) else 0.0,
            "mean_reward": float(valid["reward"].mean()) if len(valid) else 0.0,
            "tokens_in": int(frame["tokens_in"].fillna(0).sum()),
            "tokens_out": int(frame["tokens_out"].fillna(0).sum()),
            "environment": environment.kind, "backend": model.backend,
        }, summary=f"rollouts for {model.name}: {stats.summary()}",
            preview_columns=["sample_id", "sample_index", "reward", "success", "num_turns", "termination", "error"])

    def plan(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
             cache: RequestCache | None) -> GenerationPlan:
        """Rollouts to run (the model calls they make are not known before they run: ``max_tokens_out`` is the
        bound of every turn of every rollout to run writing its whole ``max_tokens``)."""
        settings = _settings(suite)
        rollouts = len(samples) * settings.eval_group_size
        return GenerationPlan(model=model.name, backend=model.backend, requests=rollouts, cached=0,
                              to_send=rollouts, est_tokens_in=0,
                              max_tokens_out=rollouts * settings.max_turns * settings.max_tokens, est_cost_usd=None)

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        """Two rows per rollout, ``reward`` and ``success``; an errored rollout gives two error rows naming who
        caused it."""
        rows = []
        for rollout in produced.itertuples(index=False):
            failed = rollout.error is not None and not pd.isna(rollout.error)
            error = f"rollout failed ({rollout.error_source}): {rollout.error}" if failed else None
            values = {"reward": None if failed else float(rollout.reward),
                      "success": None if failed else float(bool(rollout.success))}
            for scorer in ROLLOUT_SCORERS:
                rows.append({"sample_id": rollout.sample_id, "model": rollout.model,
                             "sample_index": rollout.sample_index, "scorer": scorer, "score": values[scorer],
                             "extracted": None, "request_hash": rollout.rollout_id, "error": error})
        return pd.DataFrame(rows, columns=SCORES.names)

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        settings = _settings(suite)
        return rollout_metrics(produced, samples, pass_k_values=settings.pass_k_values,
                               breakdown_keys=suite.breakdown_keys, suite=suite.suite, seed=settings.seed)

    def params(self, suite: Suite) -> dict[str, object]:
        params: dict[str, object] = {"task": self.name,
                                     "environment": _environment(suite).model_dump(exclude_none=True),
                                     "rollout": _settings(suite).model_dump()}
        if suite.user_simulator is not None:
            params["user_simulator"] = suite.user_simulator.model_dump(exclude_none=True)
        return params

    def usage(self, produced: pd.DataFrame) -> dict[str, float]:
        latency = produced["latency_s"].dropna()
        usage = {"rollouts": float(len(produced)), "errors": float(produced["error"].notna().sum()),
                 "tokens_in": float(produced["tokens_in"].fillna(0).sum()),
                 "tokens_out": float(produced["tokens_out"].fillna(0).sum()),
                 "turns": float(produced["num_turns"].fillna(0).sum())}
        if len(latency):
            usage |= {"rollout_latency_p50_s": float(latency.quantile(0.5)),
                      "rollout_latency_p95_s": float(latency.quantile(0.95))}
        return usage

    def items(self, samples: pd.DataFrame, produced: pd.DataFrame, scores: pd.DataFrame,
              judgments: pd.DataFrame | None) -> pd.DataFrame:
        """One row per rollout: the task, its reward and success, turns, how it ended, the final reply, the error
        and who caused it."""
        columns = ["sample_id", "sample_index", "model", "reward", "success", "num_turns", "termination", "error",
                   "error_source"]
        frame = produced[columns].assign(final_reply=produced["messages"].map(final_reply))
        return frame.merge(samples[["sample_id", "category", "input", "reference"]], on="sample_id", how="left")

    def log_extras(self, tracking_uri: str, run_id: str, produced: pd.DataFrame, scores: pd.DataFrame,
                   judgments: pd.DataFrame | None, samples: pd.DataFrame | None = None) -> None:
        """Each rollout as an MLflow trace (a span per model call and tool call) in the model's run, its scores
        and judgments as assessments."""
        log_rollout_traces(produced, tracking_uri=tracking_uri, run_id=run_id, scores=scores, judgments=judgments)


def agent_tasks(samples: pd.DataFrame) -> list[AgentTask]:
    """The samples table as agent tasks: the id, the prompt (a messages input gives its last user message), and the
    row's other fields with its ``reference`` and ``category`` as the environment's data."""
    tasks = []
    for row in samples.itertuples(index=False):
        data: dict[str, Any] = json.loads(row.metadata or "{}")
        for key in ("reference", "category"):
            value = getattr(row, key)
            if value is not None and not pd.isna(value):
                data.setdefault(key, value)
        prompt = row.input
        if row.input_kind == "messages":
            prompt = next((m["content"] for m in reversed(json.loads(row.input)) if m["role"] == "user"), "")
        tasks.append(AgentTask(task_id=str(row.sample_id), prompt=prompt, data=data))
    return tasks


def _environment(suite: Suite) -> EnvironmentSpec:
    if suite.environment is None:
        raise ValueError(f"suite {suite.suite!r} has no environment")
    return suite.environment


def _settings(suite: Suite) -> RolloutSpec:
    return suite.rollout or RolloutSpec()


def _policy(kind: Any) -> bool:
    """Whether the model under test acts in the environment (else the environment kind is an agent service)."""
    return getattr(kind, "provides", "environment") == "environment"


def _kind_config(environment: EnvironmentSpec) -> dict[str, Any]:
    """The settings the environment kind reads: the spec without the local side's ``verifier``."""
    return environment.model_dump(exclude_none=True, exclude={"verifier"})


def _environment_identity(suite: Suite, kind: Any) -> dict[str, Any]:
    """What about the environment changes its rollouts (part of each rollout's id): its settings and, for a kind
    that can tell (a python environment: its source files' hashes), its code."""
    environment = _environment(suite)
    fingerprint = getattr(kind, "fingerprint", None)
    code = fingerprint(_kind_config(environment), root=suite.base_dir) if fingerprint is not None else {}
    return {**environment.model_dump(exclude_none=True), **code}


def _agent(suite: Suite, model: ModelSpec, samples: pd.DataFrame, kind: Any,
           cache: RequestCache | None) -> tuple[Callable[[AgentTask, int], Agent], dict[str, Any]]:
    """The model under test as the agent, or the agent service (told the model's identifier in each payload)."""
    if _policy(kind):
        params = _params(_settings(suite))
        sampler = build_sampler(suite, model, samples)
        return model_agent_factory(sampler, params, cache=cache), model_agent_identity(sampler, params)
    config = _kind_config(_environment(suite))
    identifier = model.model or model.name

    def make_agent(task: AgentTask, member: int) -> Agent:
        return kind.build(config, root=suite.base_dir, model=identifier)

    return make_agent, {"agent": kind.label(config), "model": identifier}


def _environment_factory(suite: Suite, kind: Any) -> Callable[[], Environment]:
    environment = _environment(suite)
    conversational = suite.user_simulator is not None
    if not _policy(kind):
        return lambda: ConversationEnvironment(environment.verifier, conversational=conversational)
    config = _kind_config(environment)
    if conversational:
        config = {**config, "options": {**environment.options, "conversational": True}}
    return kind.factory(config, root=suite.base_dir, file=suite.source_path)


def _user(suite: Suite, samples: pd.DataFrame, cache: RequestCache | None) -> UserSimulator | None:
    spec = suite.user_simulator
    if spec is None:
        return None
    params = GenerationParams(max_tokens=spec.max_tokens, temperature=spec.temperature, seed=_settings(suite).seed)
    return UserSimulator(build_sampler(suite, spec.model, samples), params, cache=cache,
                         instructions_field=spec.instructions_field)


def _params(settings: RolloutSpec) -> GenerationParams:
    return GenerationParams(max_tokens=settings.max_tokens, temperature=settings.sampling_temperature,
                            top_p=settings.top_p, seed=settings.seed)


ROLLOUT = RolloutTask()
