"""Log a base-vs-fine-tuned comparison (the COMPARISON table, optionally PAIRWISE verdicts) as one MLflow run.

The run (``<suite>/comparison``) goes to the same experiment as the suite's per-model runs (``eval/<suite>``
unless named), through an explicit ``MlflowClient``; ``mlflow`` is imported lazily.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from eval_pipeline.tracking.mlflow_log import (
    _TAG_ALIASES,
    MAX_KEY_LENGTH,
    MAX_TAG_VAL_LENGTH,
    _as_float,
    _is_null,
    _jsonable,
    _mlflow,
    _truncate,
    _unique,
    default_experiment_name,
    log_metric_values,
    open_experiment,
    sanitize_name,
    start_run,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

COMPARISON_KIND = "comparison"
COMPARISON_TABLE_ARTIFACT = "comparison.json"
COMPARISON_CSV_ARTIFACT = "comparison.csv"
PAIRWISE_TABLE_ARTIFACT = "pairwise.json"
COMPARISON_PLOT_ARTIFACT = "comparison.png"
COMPARISON_STATS = ("diff", "ci_low", "ci_high", "p_value", "p_holm", "n")


def log_comparison(suite: str, comparison: pd.DataFrame, pairwise: pd.DataFrame | None = None, *,
                   tracking_uri: str, experiment_name: str | None = None, artifact_location: str | None = None,
                   tags: Mapping[str, str] | None = None) -> str:
    """Log ``comparison`` (and ``pairwise``) as one MLflow run named ``<suite>/comparison``; return its run id.

    Metrics are ``compare.<model>.<metric>.{diff,ci_low,ci_high,p_value,p_holm,n}`` (NaN values skipped); artifacts
    are the tables (``comparison.json``, ``comparison.csv``, ``pairwise.json``) and a forest plot
    (``comparison.png``). The run ends FINISHED, or FAILED when logging raises.
    """
    _mlflow()
    from mlflow.entities import RunStatus

    comparison = _own_rows(suite, comparison if comparison is not None else pd.DataFrame())
    name = experiment_name or default_experiment_name(suite)
    client, experiment_id = open_experiment(tracking_uri, name, artifact_location)
    run_id = start_run(client, experiment_id, f"{suite}/{COMPARISON_KIND}", comparison_tags(suite, comparison, tags))
    try:
        _log_metrics(client, run_id, comparison)
        _log_tables(client, run_id, comparison, pairwise)
        _log_plot(client, run_id, comparison)
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    logger.info("logged the %s comparison to MLflow run %s (experiment %r at %s)", suite, run_id, name,
                tracking_uri)
    return run_id


def comparison_tags(suite: str, comparison: pd.DataFrame, tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """The given tags plus ``eval.kind=comparison``, ``eval.suite`` and ``eval.baseline`` (comma-joined)."""
    out: dict[str, str] = {}
    for key, value in (tags or {}).items():
        out[_TAG_ALIASES.get(key, key)] = "" if value is None else str(value)
    baselines = _distinct(comparison, "baseline")
    out.update({"eval.kind": COMPARISON_KIND, "eval.suite": suite, "eval.baseline": ",".join(baselines)})
    return {key[:MAX_KEY_LENGTH]: _truncate(value, MAX_TAG_VAL_LENGTH) for key, value in out.items()}


def comparison_metric_values(comparison: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """The MLflow metrics of a COMPARISON table and the names whose value was NaN (skipped).

    Each row gives ``compare.<model>.<metric>.<stat>``; when one model × metric is compared with several
    baselines, the name is ``compare.<model>.vs.<baseline>.<metric>.<stat>`` instead.
    """
    values: dict[str, float] = {}
    skipped: list[str] = []
    if comparison is None or comparison.empty:
        return values, skipped
    rows = comparison.to_dict("records")
    baselines: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        baselines.setdefault((str(row.get("model")), str(row.get("metric"))), set()).add(str(row.get("baseline")))
    prefixes: set[str] = set()
    for row in rows:
        model, metric = str(row.get("model")), str(row.get("metric"))
        raw = f"compare.{model}.{metric}"
        if len(baselines[(model, metric)]) > 1:
            raw = f"compare.{model}.vs.{row.get('baseline')}.{metric}"
        prefix = _unique(sanitize_name(raw), prefixes)
        prefixes.add(prefix)
        for stat in COMPARISON_STATS:
            key = sanitize_name(f"{prefix}.{stat}")
            number = _as_float(row.get(stat))
            if number is None or not math.isfinite(number):
                skipped.append(key)
            else:
                values[key] = number
    return values, skipped


# --- pieces of log_comparison -------------------------------------------------------------------------------


def _own_rows(suite: str, comparison: pd.DataFrame) -> pd.DataFrame:
    """The rows of this suite, when the table holds others too."""
    if comparison.empty or "suite" not in comparison.columns:
        return comparison
    matches = comparison["suite"].astype(str) == suite
    if matches.any() and not matches.all():
        logger.warning("comparison table holds %d row(s) of other suites; logging only %s",
                       int((~matches).sum()), suite)
        return comparison[matches]
    return comparison


def _distinct(frame: pd.DataFrame, column: str) -> list[str]:
    """The non-null values of a column as text, in order of first appearance."""
    if frame is None or column not in frame.columns:
        return []
    return list(dict.fromkeys(str(value) for value in frame[column] if not _is_null(value)))


def _log_metrics(client: MlflowClient, run_id: str, comparison: pd.DataFrame) -> None:
    log_metric_values(client, run_id, *comparison_metric_values(comparison))


def _log_tables(client: MlflowClient, run_id: str, comparison: pd.DataFrame, pairwise: pd.DataFrame | None) -> None:
    client.log_table(run_id, _jsonable(comparison), COMPARISON_TABLE_ARTIFACT)
    client.log_text(run_id, comparison.to_csv(index=False), COMPARISON_CSV_ARTIFACT)
    if pairwise is not None and not pairwise.empty:
        client.log_table(run_id, _jsonable(pairwise), PAIRWISE_TABLE_ARTIFACT)


def _log_plot(client: MlflowClient, run_id: str, comparison: pd.DataFrame) -> None:
    """The forest plot; a failure to draw it is logged, not raised."""
    from eval_pipeline.tracking.plots import comparison_figure

    try:
        figure = comparison_figure(comparison)
    except Exception:
        logger.warning("could not draw the comparison plot for MLflow run %s", run_id, exc_info=True)
        return
    client.log_figure(run_id, figure, COMPARISON_PLOT_ARTIFACT, save_kwargs={"dpi": 100})
