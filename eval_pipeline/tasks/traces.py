"""``task: traces``: recorded agent sessions evaluated the way AgentCore's batch evaluation does.

The stages: ``samples`` is the sessions the source holds (one row each, with its ground truth); ``traces`` is one
agent's spans of those sessions (each of the suite's models is a recorded agent, ``backend: recorded``, whose
``model`` is its service name); ``scores`` holds the programmatic evaluators' results (no model call),
``judgments`` the judged evaluators' (the suite's ``judge`` model), and ``metrics`` the mean of each evaluator with
an interval that respects the clustering of a session's traces and tool calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from eval_pipeline.data.formats import check_breakdown_keys
from eval_pipeline.data.schemas import JUDGMENTS, SAMPLES, SCORES, TRACE_EVALUATIONS, conform
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.backends import build_sampler
from eval_pipeline.inference.likelihood_backends import build_likelihood_scorer
from eval_pipeline.inference.planning import GenerationPlan
from eval_pipeline.judging.run import JudgeStats
from eval_pipeline.judging.setup import judge_label, judge_params
from eval_pipeline.metrics.ranges import ValueRange
from eval_pipeline.progress import stage_progress
from eval_pipeline.registry import UnknownEntryError
from eval_pipeline.suites.checks import SuiteProblem, field_path
from eval_pipeline.tasks.base import Production, model_stages
from eval_pipeline.traces.evaluation import JudgeSetup, run_evaluations
from eval_pipeline.traces.evaluators.base import Evaluator
from eval_pipeline.traces.evaluators.custom import custom_evaluator
from eval_pipeline.traces.evaluators.registry import resolve_evaluator
from eval_pipeline.traces.ground_truth import (
    MAX_SESSIONS,
    SessionMetadata,
    load_evaluation_metadata,
)
from eval_pipeline.traces.ingest import ingest
from eval_pipeline.traces.result_events import result_destination, write_result_events
from eval_pipeline.traces.result_tables import as_judgments, as_scores, results_of, session_not_found
from eval_pipeline.traces.service_shapes import resource_arn
from eval_pipeline.traces.session_samples import (
    missing_row,
    missing_sessions,
    sample_truths,
    service_sessions,
    session_row,
)
from eval_pipeline.traces.sessions import sessions_from_traces
from eval_pipeline.traces.summary import evaluation_metrics

if TYPE_CHECKING:
    from eval_pipeline.inference.cache import RequestCache
    from eval_pipeline.suites.spec import ModelSpec, Suite
    from eval_pipeline.traces.spec import TracesSpec

DEFAULT_AGENT = "agent"
"""The one recorded agent of a traces suite that names none: every session of the source."""

AGENT_COLUMN = "agent"
"""The ``traces`` table of a suite carries the partition's agent name in this extra column."""


class TracesTask:
    """Recorded sessions; the production table is ``traces`` (one row per span)."""

    name = "traces"
    production_stage = "traces"
    judgeable = True
    reads_judge_metrics = False
    """Its judge rates with the evaluators' rubrics; the suite's judge block names the model only."""
    suite_keys = ("traces",)
    shardable = False
    """Its production table is spans keyed by session, and new sessions arrive through the sessions sensor: a
    suite of recorded traces is not split into shards (``Suite.shards`` must stay 1)."""
    version_fields: ClassVar[dict[str, tuple[str, ...]]] = {"samples": ("traces",), "production": ("traces",)}
    """The traces spec picks the sessions (samples) and their spans (production); ``tasks/stage_versions.py``."""

    def version_code(self, suite: Suite) -> dict[str, tuple[str, ...]]:
        """The trace parsing and evaluators behind each stage, beyond the usual (``tasks/stage_versions.py``), and
        a ground-truth file (``evaluationMetadata`` as a path) by its content for the scores and judgments."""
        code = ("eval_pipeline.traces",)
        truth = suite.traces.evaluationMetadata if suite.traces is not None else None
        files = (str(suite.resolve_path(truth)),) if isinstance(truth, str) else ()
        return {"samples": code, "production": code, "scores": (*code, *files), "judgments": (*code, *files)}

    def default_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """One recorded agent (every session of the source) and, as the dataset, the recorded spans' source."""
        return {"models": [{"name": DEFAULT_AGENT, "backend": "recorded"}],
                "dataset": {"uri": _source_uri(data.get("traces"))}}

    def validate(self, suite: Suite) -> None:
        if suite.traces is None:
            raise ValueError("task 'traces' needs a 'traces' block: evaluators, dataSourceConfig and, optionally, "
                             "evaluationMetadata (the ground truth per session)")
        others = [m.name for m in suite.models if m.backend != "recorded"]
        if others:
            raise ValueError(f"task 'traces' evaluates recorded agents (backend: recorded); models {others} are not")
        if suite.baseline is not None:
            raise ValueError("task 'traces' has no baseline: different agents' sessions are not the same items")
        if suite.judge is not None and (suite.judge.builtin_metrics or suite.judge.custom_metrics):
            raise ValueError("task 'traces' is judged by its evaluators (traces.evaluators); the judge block names "
                             "only the judge model (drop builtin_metrics and custom_metrics)")

    def problems(self, suite: Suite) -> Iterator[SuiteProblem]:
        """Found when the suite loads: unknown evaluator ids, custom evaluators that cannot be built, judged
        evaluators without a judge, scorers (traces are scored by their evaluators), bad ground truth."""
        spec = _spec(suite)
        if "scorers" in suite.model_fields_set:
            yield SuiteProblem("a traces suite is scored by traces.evaluators, not scorers", ("scorers",),
                               file=suite.source_path)
            return
        try:
            evaluators = suite_evaluators(suite)
        except _EvaluatorProblem as exc:
            yield SuiteProblem(exc.message, exc.path, file=suite.source_path)
            return
        judged = [e.evaluator_id for e in evaluators if e.judged and not _own_judge(spec, e.evaluator_id)]
        if judged and suite.judge is None:
            yield SuiteProblem(f"evaluators {judged} ask a judge: add a 'judge' block naming the judge model "
                               "(judge: {} is the embedded model)", ("traces", "evaluators"),
                               file=suite.source_path)
            return
        try:
            suite_ground_truth(suite)
        except EvalInputError as exc:
            if exc.file and exc.file != suite.source_path:
                raise  # located in the ground-truth file: that file and field are the place to look
            yield SuiteProblem(exc.reason, ("traces", "evaluationMetadata", *field_path(exc.field or "")),
                               file=suite.source_path)

    def stages(self, suite: Suite) -> tuple[str, ...]:
        return model_stages(self, suite)

    def load_samples(self, suite: Suite, limit: int | None = None,
                     sample_ids: list[str] | None = None) -> pd.DataFrame:
        """One row per session of the source (and per session the ground truth names that the source lacks):
        ``sample_id`` the session id, ``input`` its first prompt, ``category`` its testScenarioId, ``metadata``
        its service, ground truth and the ground truth's ``metadata`` fields (breakdown keys read these).
        ``sample_ids``: only these sessions (read from the source alone where it can filter)."""
        sessions = sessions_from_traces(_ingest(suite, sample_ids))
        truths = suite_ground_truth(suite)
        if sample_ids is not None:
            truths = {sid: truth for sid, truth in truths.items() if sid in set(sample_ids)}
        rows = [session_row(session, truths.get(session.session_id)) for session in sessions]
        found = {session.session_id for session in sessions}
        rows += [missing_row(truth) for session_id, truth in truths.items() if session_id not in found]
        rows = rows[:limit] if limit is not None else rows
        check_breakdown_keys(rows, suite.breakdown_keys, suite.resolve_uri(suite.dataset.uri), limit)
        return pd.DataFrame(rows, columns=SAMPLES.names)

    def produce(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame, cache: RequestCache | None,
                log: Callable[[str], None]) -> Production:
        """The agent's spans of the sessions in ``samples`` (read again from the source)."""
        wanted = service_sessions(samples, model.model)
        frame = _ingest(suite, sorted(wanted))
        frame = frame[frame["session_id"].isin(wanted)].reset_index(drop=True).assign(**{AGENT_COLUMN: model.name})
        sessions = frame["session_id"].nunique()
        summary = (f"{len(frame)} spans of {sessions} sessions ({frame['trace_id'].nunique()} traces) for "
                   f"{model.name}")
        return Production(frame, {
            "spans": len(frame), "sessions": sessions, "traces": int(frame["trace_id"].nunique()),
            "tool_calls": int((frame["kind"] == "tool").sum()),
            "spans_without_body": int((~frame["has_body"].fillna(False).astype(bool)).sum()),
            "span_errors": int(frame["error"].notna().sum()), "source": _spec(suite).dataSourceConfig.kind,
        }, summary=summary, preview_columns=["session_id", "trace_id", "kind", "name", "tool_name", "status"])

    def plan(self, suite: Suite, model: ModelSpec, samples: pd.DataFrame,
             cache: RequestCache | None) -> GenerationPlan:
        """Nothing is sent to produce recorded spans (the judge's requests are the judgments stage's)."""
        return GenerationPlan(model=model.name, backend=model.backend, requests=0, cached=0, to_send=0,
                              est_tokens_in=0, max_tokens_out=0, est_cost_usd=None)

    def score(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame) -> pd.DataFrame:
        """The programmatic evaluators' results (trajectory matches, code evaluators)."""
        evaluators = [e for e in suite_evaluators(suite) if not e.judged]
        results = self._evaluate(suite, samples, produced, evaluators, judge=None, on_progress=stage_progress())
        return conform(as_scores(results), SCORES).to_pandas()

    def judge(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame, *, cache: RequestCache | None,
              on_progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, JudgeStats]:
        """The judged evaluators' results, through the suite's judge (custom evaluators may name their own)."""
        assert suite.judge is not None
        evaluators = [e for e in suite_evaluators(suite) if e.judged]
        judge = suite.judge
        setup = JudgeSetup(sampler=build_sampler(suite, judge.model, samples), params=judge_params(judge),
                           label=judge_label(judge), cache=cache,
                           sampler_for=lambda spec: build_sampler(suite, spec, samples),
                           likelihood=(build_likelihood_scorer(suite, judge.model)
                                       if judge.verdict == "likelihood" else None))
        results, run = self._evaluate(suite, samples, produced, evaluators, judge=setup, on_progress=on_progress,
                                      with_run=True)
        frame = conform(as_judgments(results), JUDGMENTS).to_pandas()
        stats = JudgeStats(requests=run.judge_requests, cached=run.judge_cached, sent=run.judge_sent,
                           errors=int(frame["error"].notna().sum()))
        return frame, stats

    def _evaluate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame, evaluators: list[Evaluator],
                  *, judge: JudgeSetup | None, on_progress: Callable[[int, int], None] | None = None,
                  with_run: bool = False) -> Any:
        model = _partition_model(produced)
        sessions = sessions_from_traces(produced)
        truths = sample_truths(samples)
        found = {session.session_id for session in sessions}
        run = run_evaluations(sessions, truths, evaluators, judge=judge, model=model, on_progress=on_progress)
        missing = [session_not_found(sid, e, model, truths[sid].test_scenario_id)
                   for sid in missing_sessions(samples) if sid not in found for e in evaluators]
        results = pd.concat([run.frame, pd.DataFrame(missing, columns=TRACE_EVALUATIONS.names)], ignore_index=True)
        return (results, run) if with_run else results

    def aggregate(self, suite: Suite, samples: pd.DataFrame, produced: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
        """Each evaluator's mean over its results, the interval clustered by session."""
        results = pd.DataFrame({"session_id": scores["sample_id"], "evaluator_id": scores["scorer"],
                                "score": scores["score"], "error": scores["error"], "model": scores["model"]})
        breakdown = {row.sample_id: json.loads(row.metadata or "{}") for row in samples.itertuples(index=False)}
        model = str(scores["model"].iloc[0]) if len(scores) else DEFAULT_AGENT
        return evaluation_metrics(results, suite=suite.suite, model=model, breakdown=breakdown,
                                  breakdown_keys=suite.breakdown_keys)

    def params(self, suite: Suite) -> dict[str, object]:
        spec = _spec(suite)
        return {"task": self.name, "evaluators": spec.evaluator_ids(),
                "dataSourceConfig": spec.dataSourceConfig.model_dump(exclude_none=True, mode="json")}

    def pool(self, suite: Suite) -> str:
        """``traces-<source>``: reading CloudWatch Logs shares one limit across runs."""
        return f"traces-{_spec(suite).dataSourceConfig.kind}"

    def score_ranges(self, suite: Suite) -> dict[str, ValueRange]:
        """None: every evaluator's score is normalized to [0, 1]."""
        return {}

    def item_metrics(self, suite: Suite) -> tuple[str, ...]:
        """The evaluator ids: the ``scorer`` values of its scores and judgments."""
        return tuple(suite.traces.evaluator_ids()) if suite.traces is not None else ()

    def ungateable_metrics(self, suite: Suite) -> dict[str, str]:
        """Every evaluator: a release gate pairs items, and different agents' sessions are not the same items."""
        return dict.fromkeys(self.item_metrics(suite), "each recorded agent has sessions of its own, so there is "
                                                       "no item to pair with the baseline's")

    def usage(self, produced: pd.DataFrame) -> dict[str, float]:
        return {"spans": float(len(produced)), "sessions": float(produced["session_id"].nunique()),
                "traces": float(produced["trace_id"].nunique()),
                "tool_calls": float((produced["kind"] == "tool").sum()),
                "agent_tokens_in": float(produced["tokens_in"].fillna(0).sum()),
                "agent_tokens_out": float(produced["tokens_out"].fillna(0).sum())}

    def items(self, samples: pd.DataFrame, produced: pd.DataFrame, scores: pd.DataFrame,
              judgments: pd.DataFrame | None) -> pd.DataFrame:
        """One row per evaluator result: the session, trace and span, the value and label, the explanation, the
        error and the ground-truth fields it ignored."""
        columns = ["session_id", "trace_id", "span_id", "evaluator_id", "level", "value", "label", "explanation",
                   "ignored_reference_fields", "test_scenario_id", "error_code", "error"]
        return results_of(scores, judgments)[columns]

    def log_extras(self, tracking_uri: str, run_id: str, produced: pd.DataFrame, scores: pd.DataFrame,
                   judgments: pd.DataFrame | None, samples: pd.DataFrame | None = None) -> None:
        """Each session as an MLflow trace, the evaluators' results attached as assessments."""
        from eval_pipeline.tracking.session_traces import log_session_traces

        log_session_traces(produced, results_of(scores, judgments), tracking_uri=tracking_uri, run_id=run_id)


    def export(self, suite: Suite, run_id: str, scores: pd.DataFrame,
               judgments: pd.DataFrame | None) -> dict[str, object]:
        """With ``outputConfig.cloudWatchConfig``: each result as an event in CloudWatch Logs, in the service's
        layout (the job named after the suite and the Dagster run)."""
        output = _spec(suite).outputConfig
        if output is None or output.cloudWatchConfig is None:
            return {}
        job = {"batchEvaluationId": run_id, "batchEvaluationName": suite.suite,
               "batchEvaluationArn": resource_arn("local", "batch-evaluation", run_id)}
        written = write_result_events(results_of(scores, judgments), output.cloudWatchConfig, job=job)
        group, stream = result_destination(output.cloudWatchConfig, job)
        return {"result_events": written, "result_log_group": group, "result_log_stream": stream}


class _EvaluatorProblem(Exception):
    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.message, self.path = message, path


def suite_evaluators(suite: Suite) -> list[Evaluator]:
    """The suite's evaluators, builtins by id and custom ones built from their configuration."""
    spec = _spec(suite)
    root = Path(suite.base_dir) if suite.base_dir else None
    evaluators: list[Evaluator] = []
    for index, entry in enumerate(spec.evaluators):
        path: tuple[str | int, ...] = ("traces", "evaluators", index)
        if isinstance(entry, str):
            try:
                evaluators.append(resolve_evaluator(entry))
            except UnknownEntryError as exc:
                raise _EvaluatorProblem(str(exc), path) from None
            continue
        try:
            evaluators.append(custom_evaluator(entry.evaluatorName, entry, root=root))
        except EvalInputError as exc:
            raise _EvaluatorProblem(exc.reason, (*path, *field_path(exc.field or ""))) from None
    return evaluators


def suite_ground_truth(suite: Suite) -> dict[str, SessionMetadata]:
    """The ground truth per session (``traces.evaluationMetadata``: inline, or a JSON file)."""
    value = _spec(suite).evaluationMetadata
    if value is not None and not isinstance(value, str):
        value = value.model_dump(exclude_none=True, mode="json")
    root = Path(suite.base_dir) if suite.base_dir else None
    return load_evaluation_metadata(value, root=root, file=suite.source_path)


def _spec(suite: Suite) -> TracesSpec:
    if suite.traces is None:
        raise ValueError(f"suite {suite.suite!r} has no traces block")
    return suite.traces


def _own_judge(spec: TracesSpec, evaluator_id: str) -> bool:
    """A custom evaluator that names its own judge model needs no suite judge."""
    custom = spec.custom().get(evaluator_id)
    return custom is not None and "modelConfig" in custom.evaluatorConfig.get("llmAsAJudge", {})


def _ingest(suite: Suite, sessions: list[str] | None = None) -> pd.DataFrame:
    """The source's spans (of ``sessions`` only, when given: CloudWatch is asked for just those)."""
    config = _spec(suite).dataSourceConfig
    root = Path(suite.base_dir) if suite.base_dir else None
    if sessions is not None and 0 < len(sessions) <= MAX_SESSIONS and not config.filter.sessionIds:
        source = config.source
        narrowed = source.model_copy(update={"filterConfig": config.filter.model_copy(
            update={"sessionIds": list(sessions)})})
        config = config.model_copy(update={config.kind: narrowed})
    frame = ingest(config, root=root)
    return frame if sessions is None else frame[frame["session_id"].isin(set(sessions))].reset_index(drop=True)


def _source_uri(traces: Any) -> str:
    """What a traces suite's dataset is, for lineage: the span files, the log group, or the rollouts table."""
    source = traces.get("dataSourceConfig", {}) if isinstance(traces, dict) else {}
    if not isinstance(source, dict):
        return "traces"
    if isinstance(source.get("files"), dict) and source["files"].get("paths"):
        return str(source["files"]["paths"][0])
    if isinstance(source.get("rollouts"), dict) and source["rollouts"].get("path"):
        return str(source["rollouts"]["path"])
    if isinstance(source.get("cloudWatchLogs"), dict):
        group = source["cloudWatchLogs"].get("spansLogGroupName", "aws/spans")
        services = ",".join(source["cloudWatchLogs"].get("serviceNames", []))
        return f"cloudwatch-logs://{group}?service={services}"
    return "traces"


def _partition_model(produced: pd.DataFrame) -> str | None:
    """The recorded agent (the partition) whose spans these are: ``produce`` writes it in the ``agent`` column."""
    if AGENT_COLUMN in produced.columns and len(produced):
        return str(produced[AGENT_COLUMN].iloc[0])
    return None


TRACES_TASK = TracesTask()
