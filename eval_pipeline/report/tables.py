"""The tables a report is built from, read through any ``TableReader`` (local or S3 outputs, sharded or not)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from eval_pipeline.data.parquet_files import read_table
from eval_pipeline.suites.spec import Suite


class TableReader(Protocol):
    """Where a suite's tables are: ``ParquetIOManager`` (resources/parquet_io.py) satisfies it."""

    def path_for(self, asset_key: list[str], partition: str | None = None) -> str: ...

    def read_model_stage(self, asset_key: list[str], model: str) -> pd.DataFrame | None: ...


@dataclass
class RunInfo:
    """What a model's tables do not hold: its runs, the gates' verdicts (``GateResult.as_dict()``), the judge
    warnings (``{"metric", "reason"}``)."""

    dagster_run_id: str | None = None
    mlflow_run_id: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    judge_warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ModelTables:
    """One model's tables (None: the stage has not been materialized)."""

    model: str
    produced: pd.DataFrame | None
    """The production stage's table (generations, rollouts, traces, …: ``production_stage`` names it)."""
    scores: pd.DataFrame | None
    judgments: pd.DataFrame | None
    metrics: pd.DataFrame | None
    run: RunInfo = field(default_factory=RunInfo)


@dataclass
class SuiteTables:
    """Everything a suite's report shows."""

    suite: Suite
    samples: pd.DataFrame
    production_stage: str
    models: list[ModelTables]
    comparison: pd.DataFrame | None = None


def read_suite_tables(suite: Suite, reader: TableReader, *, models: Sequence[str] | None = None,
                      runs: Mapping[str, RunInfo] | None = None) -> SuiteTables:
    """The suite's tables: ``models`` (default: every declared model whose metrics table exists), the samples and the
    comparison when it exists. A model without a metrics table yet is left out; a suite with no samples table gives
    an empty ``samples`` frame and no models."""
    from eval_pipeline.suites.task_kinds import TASK_KINDS

    stage = TASK_KINDS.get(suite.task).production_stage
    samples = read_table(reader.path_for([suite.suite, "samples"]))
    names = list(models) if models is not None else [model.name for model in suite.models]
    runs = runs or {}
    found: list[ModelTables] = []
    for name in dict.fromkeys(names):
        metrics = reader.read_model_stage([suite.suite, "metrics"], name)
        if metrics is None or samples is None:
            continue
        judgments = reader.read_model_stage([suite.suite, "judgments"], name) if suite.judge is not None else None
        found.append(ModelTables(
            model=name, produced=reader.read_model_stage([suite.suite, stage], name),
            scores=reader.read_model_stage([suite.suite, "scores"], name), judgments=judgments, metrics=metrics,
            run=runs.get(name) or RunInfo()))
    comparison = read_table(reader.path_for([suite.suite, "comparison"])) if len(found) > 1 else None
    if comparison is not None:
        comparison = comparison[comparison["model"].isin([m.model for m in found])
                                & comparison["baseline"].isin([m.model for m in found])].reset_index(drop=True)
    return SuiteTables(suite=suite, samples=samples if samples is not None else pd.DataFrame(columns=SAMPLE_COLUMNS),
                       production_stage=stage, models=found, comparison=comparison)


SAMPLE_COLUMNS = ["sample_id", "input", "input_kind", "reference", "choices", "category", "metadata"]


