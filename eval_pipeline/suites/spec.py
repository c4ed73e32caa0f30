"""The typed shape of a suite file. Unknown keys are errors, so a misspelling never passes silently."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from eval_pipeline.agents.spec import EnvironmentSpec, RolloutSpec, UserSimulatorSpec
from eval_pipeline.inference.backend_registry import likelihood_backends
from eval_pipeline.inference.model_spec import (  # noqa: F401  (PriceSpec, EMBEDDED_MODEL: re-exported)
    EMBEDDED_MODEL,
    ModelSpec,
    PriceSpec,
)
from eval_pipeline.inference.model_spec import MODEL_NAME_PATTERN as NAME_PATTERN
from eval_pipeline.scoring.spec import ScorerSpec
from eval_pipeline.suites import checkpoint_sources
from eval_pipeline.suites.task_kinds import TASK_KINDS
from eval_pipeline.traces.spec import TracesSpec


def __getattr__(name: str) -> object:
    """``BACKENDS``, ``TEMPERATURE_RANGES`` and the other backend tables, read from the registry when asked for."""
    from eval_pipeline.inference import model_spec

    return getattr(model_spec, name)


SUITE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
DATASET_FORMATS = ("auto", "gen_qa", "bedrock", "messages", "humaneval", "multiple_choice", "text")


MAX_SHARDS = 1024
"""The most shards a suite may be split into (each shard of each model is a partition, and a run)."""

MAX_NUM_SAMPLES = 1000
"""The most samples per item a suite may ask for (HumanEval's pass@k convention is 200); more is a typo, and would
plan items × num_samples requests in memory before sending one."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatasetSpec(_Strict):
    """Where the items come from: a path, a glob or an ``s3://`` URI, and their format."""

    uri: str
    format: Literal["auto", "gen_qa", "bedrock", "messages", "humaneval", "multiple_choice", "text"] = "auto"
    limit: int | None = Field(default=None, ge=1)


class GenerationSpec(_Strict):
    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, max_length=4)
    num_samples: int = Field(default=1, ge=1, le=MAX_NUM_SAMPLES)
    seed: int = 0
    system_prompt: str | None = None


class PromptSpec(_Strict):
    """Prompt templates over each item's fields (lm-eval's names and meaning): ``doc_to_text`` is what the model
    reads (a field name or a Jinja template), ``doc_to_target`` the answer (multiple choice: the right choice's index
    or text), ``doc_to_choice`` the choices (a field, a template rendering a list, or a list); ``num_fewshot``
    examples from ``fewshot_uri`` (default: the dataset itself, an item never its own example) drawn with
    ``fewshot_seed`` by ``fewshot_sampler`` (``default``: random; ``first_n``), each written as question,
    ``target_delimiter``, answer, ``fewshot_delimiter``; ``description`` first."""

    doc_to_text: str
    doc_to_target: str | int | None = None
    doc_to_choice: str | list[str] | None = None
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    description: str = ""
    num_fewshot: int = Field(default=0, ge=0)
    fewshot_uri: str | None = None
    fewshot_sampler: Literal["default", "first_n"] = "default"
    fewshot_seed: int = 1234

    @field_validator("doc_to_text", "doc_to_target", "doc_to_choice", "description")
    @classmethod
    def _valid_jinja(cls, value: Any) -> Any:
        from eval_pipeline.lm_eval_tasks.templates import compile_template

        if isinstance(value, str):
            compile_template(value)  # TemplateProblem is a ValueError: reported with the file and the key
        return value

    @model_validator(mode="after")
    def _answers_for_examples(self) -> PromptSpec:
        if self.num_fewshot and self.doc_to_target is None:
            raise ValueError("few-shot examples need doc_to_target (each example is written with its answer)")
        return self


class LmEvalSpec(_Strict):
    """``task: lm_eval``: an lm-evaluation-harness task YAML with local data, run with lm-eval's prompts and
    numbers. ``num_fewshot`` overrides the YAML's (lm-eval's ``--num_fewshot``); ``fewshot_seed`` is lm-eval's
    few-shot seed (its default 1234)."""

    task: str
    num_fewshot: int | None = Field(default=None, ge=0)
    fewshot_seed: int = 1234


class JudgeSpec(_Strict):
    """LLM-as-judge: which model judges, and on which metrics. The judge runs at temperature 0 with a pinned seed.

    ``custom_metrics`` is the ``customMetricDefinition`` list as JSON text, a path to a JSON file, or YAML data.
    ``human_labels`` maps a metric to the dataset field holding a human's rating of it (for judge agreement)."""

    model: ModelSpec = ModelSpec(name="judge", backend="local", model=EMBEDDED_MODEL)
    builtin_metrics: list[str] = Field(default_factory=list)
    custom_metrics: str | list[Any] | dict[str, Any] | None = None
    max_tokens: int = Field(default=256, ge=1)
    seed: int = 0
    pairwise: bool = False
    """Also judge each model against the suite's baseline, both answers shown in both orders."""
    verdict: Literal["generate", "likelihood"] = "generate"
    """generate: the judge writes its reasoning and a verdict line; likelihood: each rating level is scored as the
    continuation of the judge's prompt and the most likely wins (for small local judges; local or openai)."""
    human_labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _likelihood_needs_a_scorer(self) -> JudgeSpec:
        scorers = likelihood_backends()
        if self.verdict == "likelihood" and self.model.backend not in scorers:
            raise ValueError(f"verdict 'likelihood' needs a judge on {' or '.join(scorers)}, "
                             f"not {self.model.backend!r}")
        return self

    @field_validator("model", mode="before")
    @classmethod
    def _judge_name(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" not in value:
            return {"name": "judge", **value}
        return value


class WatchSpec(_Strict):
    """Where new models appear, each registered as a partition and evaluated once: exactly one of a local folder
    (``dir``: one directory with a ``config.json`` each), an S3 prefix (``s3``: the same, one "folder" each), a
    SageMaker model package group (its Approved packages) or an MLflow registered model (its new versions, or
    with ``alias`` each version the alias moves to). Sources are entries of
    ``checkpoint_sources.CHECKPOINT_SOURCES``."""

    dir: str | None = None
    s3: str | None = Field(default=None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    sagemaker_model_package_group: str | None = None
    mlflow_model: str | None = None
    alias: str | None = None
    """mlflow_model: follow this alias (``champion``) instead of every new version."""
    region: str | None = None
    """sagemaker_model_package_group: the AWS region (default: the environment's)."""
    tracking_uri: str | None = None
    """mlflow_model: the registry's tracking URI (default: the pipeline's MLflow store)."""
    backend: str = "local"
    """The backend that serves each watched model from its location (a folder, an ``s3://`` URI, model data, a
    ``models:/`` URI)."""

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return ModelSpec._known_backend(value)

    @model_validator(mode="after")
    def _one_source(self) -> WatchSpec:
        named = [kind for kind in checkpoint_sources.CHECKPOINT_SOURCES.names() if getattr(self, kind, None)]
        if len(named) != 1:
            raise ValueError("watch names exactly one source of "
                             f"{', '.join(checkpoint_sources.CHECKPOINT_SOURCES.names())}; got {named or 'none'}")
        if self.alias is not None and self.mlflow_model is None:
            raise ValueError("watch.alias applies to mlflow_model only")
        return self

    @property
    def source_kind(self) -> str:
        """The field naming the source (``dir``, ``s3`` ...)."""
        return next(kind for kind in checkpoint_sources.CHECKPOINT_SOURCES.names() if getattr(self, kind, None))


class MetricGateSpec(_Strict):
    """One gated metric's rule, exactly one of: ``max_regression: X`` (fail when the model is significantly worse
    than the baseline by more than X) or ``min_improvement: X`` (pass only when significantly better by more
    than X). X is in the metric's units (0.02 = two points of a 0–1 score)."""

    max_regression: float | None = Field(default=None, ge=0.0)
    min_improvement: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _one_rule(self) -> MetricGateSpec:
        if (self.max_regression is None) == (self.min_improvement is None):
            raise ValueError("a gated metric takes exactly one of 'max_regression' and 'min_improvement'")
        return self

    @property
    def rule(self) -> str:
        return "max_regression" if self.max_regression is not None else "min_improvement"

    @property
    def threshold(self) -> float:
        return float(self.max_regression if self.max_regression is not None else self.min_improvement)


class GatesSpec(_Strict):
    """Release gates (``metrics/release_gates.py``): every model against ``baseline`` on the same items, paired,
    Holm-adjusted over ``metrics`` at level ``alpha``; a failure fails the run and blocks ``promote``."""

    baseline: str
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    max_unpaired: int = Field(default=0, ge=0)
    """Items scored by only one side (or errored on both) tolerated per metric before the gate fails."""
    metrics: dict[str, MetricGateSpec] = Field(min_length=1)


class PromoteSpec(_Strict):
    """What to do with a model whose release gates passed: move an MLflow alias and/or set tags on its registered
    model version, and/or approve its SageMaker model package. A model's registry entry is found from ``targets``
    (model name → ``models:/<name>/<version>`` or a model package ARN), else its ``model`` field (a ``models:/``
    URI or a model package ARN), else the checkpoint sensor's run tags (``eval/checkpoint_uri``)."""

    mlflow_alias: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    mlflow_tags: dict[str, str] = Field(default_factory=dict)
    sagemaker_approve: bool = False
    targets: dict[str, str | list[str]] = Field(default_factory=dict)
    """Model name → its registry entries (a ``models:/`` URI, a model package ARN, or a list of both)."""
    tracking_uri: str | None = None
    """The MLflow registry (default: the watched registry's, else the pipeline's MLflow store)."""
    region: str | None = None

    @model_validator(mode="after")
    def _does_something(self) -> PromoteSpec:
        if self.mlflow_alias is None and not self.mlflow_tags and not self.sagemaker_approve:
            raise ValueError("promote names no action: set mlflow_alias, mlflow_tags or sagemaker_approve")
        return self


class Suite(_Strict):
    suite: str = Field(pattern=SUITE_NAME_PATTERN, max_length=63)
    description: str = ""
    task: str = "generate"
    """A task kind registered in ``TASK_KINDS``. generate: models answer, scorers and the judge score the answers;
    multiple_choice: each choice's log-likelihood after the question (acc, acc_norm); perplexity: the
    log-likelihood of each text (token perplexity, bits per byte, next-token accuracy over the corpus)."""
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(min_length=1)
    generation: GenerationSpec = GenerationSpec()
    scorers: list[ScorerSpec] = Field(default_factory=lambda: [ScorerSpec(name="exact_match")])
    judge: JudgeSpec | None = None
    baseline: str | None = None
    """A model every other model is compared with, item by item (paired differences, McNemar, pairwise judging)."""
    mlflow_experiment: str | None = None
    """Default ``eval/<suite>``; every model's run (and the comparison's) lands in it."""
    breakdown_keys: list[str] = Field(default_factory=list)
    pass_k: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    """For each scorer, ``<scorer>.pass@k`` and ``<scorer>.pass^k`` over ``generation.num_samples`` samples."""
    success_threshold: float = 1.0
    """A sample succeeds (for pass@k and pass^k) when its score is at least this (a finite number: NaN would make
    every comparison false and every pass@k 0)."""
    max_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    shards: int = Field(default=1, ge=1, le=MAX_SHARDS)
    """Split the items into this many shards (by a stable hash of ``sample_id``): the per-item stages are then
    partitioned by model × shard, so a backfill fans out across run workers, and the metrics of a model aggregate
    all its shards (the same numbers as one shard). A shard may hold no item. Task kinds whose production table is
    not one row set per item (``traces``) take 1 only."""
    environment: EnvironmentSpec | None = None
    """task rollout: the environment the models act in (``python``), or the agent service rolled out
    (``agentcore``, ``lambda``)."""
    rollout: RolloutSpec | None = None
    """task rollout: group size, sampling, pass@k and pass^k, turns, concurrency and the time budget."""
    user_simulator: UserSimulatorSpec | None = None
    """task rollout: an LLM playing the user from each task's instructions (conversational tasks)."""
    traces: TracesSpec | None = None
    """task traces: recorded agent sessions evaluated as AgentCore's batch evaluation does (evaluators, data source,
    ground truth per session)."""
    prompt: PromptSpec | None = None
    """Prompt templates and few-shot examples over each item's fields (generate, multiple_choice, perplexity)."""
    lm_eval: LmEvalSpec | None = None
    """task lm_eval: the lm-eval task YAML run (``task`` defaults to lm_eval when this is given)."""
    watch: WatchSpec | None = None
    gates: GatesSpec | None = None
    """Release gates against a pinned baseline (blocking asset checks ``release_gate``)."""
    promote: PromoteSpec | None = None
    """What a model whose release gates pass gets (the ``[suite, promotion]`` asset); needs ``gates``."""
    schedule: str | None = "0 2 * * *"
    source_path: str | None = None
    base_dir: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        """What the suite's task kind fills in when the file leaves it out (``default_fields``: a traces suite's
        one recorded agent and its dataset, the recorded spans)."""
        if isinstance(data, dict) and "lm_eval" in data and "task" not in data:
            data = {**data, "task": "lm_eval"}
        if isinstance(data, dict) and isinstance(data.get("task"), str) and data["task"] in TASK_KINDS:
            defaults = getattr(TASK_KINDS.get(data["task"]), "default_fields", None)
            if defaults is not None:
                return {**defaults(data), **data}
        return data

    @field_validator("scorers", mode="before")
    @classmethod
    def _scorer_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("task")
    @classmethod
    def _known_task_kind(cls, value: str) -> str:
        if value not in TASK_KINDS:
            raise ValueError(TASK_KINDS.unknown(value))
        return value

    @field_validator("shards")
    @classmethod
    def _shardable_kind(cls, value: int, info: ValidationInfo) -> int:
        task = info.data.get("task")
        if value > 1 and task in TASK_KINDS and not getattr(TASK_KINDS.get(task), "shardable", True):
            raise ValueError(f"task {task!r} cannot be split into shards (its production table is not one set of "
                             "rows per item): leave shards at 1")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        for label, names in (("models", [m.name for m in self.models]),
                             ("scorers", [s.name for s in self.scorers])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{label}: duplicate names {duplicates}")
        if self.baseline is not None and self.baseline not in [m.name for m in self.models]:
            raise ValueError(f"baseline {self.baseline!r} is not one of the suite's models "
                             f"({', '.join(m.name for m in self.models)})")
        kind = TASK_KINDS.get(self.task)
        kind.validate(self)
        if self.prompt is not None:
            shape = getattr(kind, "prompt_shape", None)
            if shape is None:
                raise ValueError(f"prompt: task {self.task!r} does not read prompt templates")
            if shape == "choice" and (self.prompt.doc_to_choice is None or self.prompt.doc_to_target is None):
                raise ValueError("prompt: a multiple_choice task needs doc_to_choice and doc_to_target")
            if shape == "text" and self.prompt.num_fewshot:
                raise ValueError(f"prompt: task {self.task!r} scores texts, without few-shot examples")
        if self.judge is not None and not kind.judgeable:
            raise ValueError(f"task {self.task!r} has no answers for a judge to rate")
        if self.judge is not None and self.judge.pairwise and self.baseline is None:
            raise ValueError("judge.pairwise needs a 'baseline' model to compare against")
        return self

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        watched = self.watched_model(name)
        if watched is not None:
            return watched
        known = ", ".join(m.name for m in self.models)
        raise KeyError(f"suite {self.suite!r} has no model {name!r} (known: {known})")

    def watched_model(self, name: str) -> ModelSpec | None:
        """A watched model as a model spec, its location (a checkpoint folder, an ``s3://`` folder, a SageMaker
        package's model data, a ``models:/`` URI) in ``model``; None if the source has no such name."""
        if self.watch is None or not re.match(NAME_PATTERN, name):
            return None
        location = checkpoint_sources.checkpoint_source(self.watch, self).location(name)
        if location is None:
            return None
        return ModelSpec(name=name, backend=self.watch.backend, model=location)

    def resolve_path(self, value: str) -> Path:
        """A path from the suite, relative paths taken from the project root (the folder holding ``evals/``)."""
        path = Path(value).expanduser()
        if path.is_absolute() or self.base_dir is None:
            return path
        return Path(self.base_dir) / path

    def resolve_uri(self, uri: str) -> str:
        return uri if "://" in uri else str(self.resolve_path(uri))
