"""Dagster metadata for stage tables: previews, metric summaries, metric values the UI plots, the MLflow run."""

from __future__ import annotations

import json
import math

import dagster as dg
import pandas as pd

from eval_pipeline.metrics.gates import GateResult
from eval_pipeline.tracking.run_links import experiment_of, experiment_page_url, run_page_url, serves_pages

PREVIEW_ROWS = 10
_CELL_CHARS = 80
_REASON_CHARS = 400
"""A gate's reason is read whole (up to this many characters)."""
METRIC_PREFIX = "metric/"
MAX_PLOTTED_METRICS = 50
"""At most this many metrics get numeric entries (each up to four: value, ci_low, ci_high, n), in table order."""
MLFLOW_RUN_KEY = "mlflow_run"
MLFLOW_EXPERIMENT_KEY = "mlflow_experiment"
LATENCY_DIGITS = 3
"""Significant digits of a latency in seconds shown in metadata (0.123 s, 12.3 s)."""
COST_DIGITS = 6
"""Significant digits of a cost in USD shown in metadata ($0.00123457, $12.3457): no float noise such as
0.30000000000000004."""


def preview(frame: pd.DataFrame, columns: list[str] | None = None,
            samples: pd.DataFrame | None = None) -> dg.MetadataValue:
    """The first rows as a markdown table; with ``samples``, each row's prompt (``input``) and ``reference`` are
    shown beside its other columns (joined on ``sample_id``), so an output is read next to what it answers."""
    shown = (frame[columns] if columns else frame).head(PREVIEW_ROWS)
    if samples is not None:
        shown = with_prompt_and_reference(shown, samples)
    return dg.MetadataValue.md(markdown_table(shown))


def with_prompt_and_reference(frame: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the samples' prompt and reference inserted after its key columns (``sample_id``,
    ``sample_index``); a messages input shows its last user message. Unchanged when it has no ``sample_id`` or
    already holds those columns."""
    if "sample_id" not in frame.columns or "sample_id" not in samples.columns:
        return frame
    joined = [c for c in ("input", "reference") if c in samples.columns and c not in frame.columns]
    if not joined:
        return frame
    wanted = samples.drop_duplicates("sample_id").set_index("sample_id")
    kinds = wanted["input_kind"] if "input_kind" in wanted.columns else None
    added = {}
    for column in joined:
        values = frame["sample_id"].map(wanted[column])
        if column == "input" and kinds is not None:
            values = pd.Series([prompt_preview(v, k) for v, k in zip(values, frame["sample_id"].map(kinds),
                                                                        strict=True)], index=frame.index)
        added[column] = values
    keys = [c for c in ("sample_id", "sample_index") if c in frame.columns]
    at = max(frame.columns.get_loc(c) for c in keys) + 1
    result = frame.copy()
    for offset, (column, values) in enumerate(added.items()):
        result.insert(at + offset, column, values)
    return result


def prompt_preview(text: object, input_kind: object) -> object:
    """A prompt as one line of a preview: the text, or a messages input's last user message."""
    if input_kind != "messages" or not isinstance(text, str):
        return text
    try:
        messages = json.loads(text)
    except ValueError:
        return text
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last = users[-1] if users else None
    return last if isinstance(last, str) else text


def markdown_table(frame: pd.DataFrame, cell_chars: int = _CELL_CHARS) -> str:
    """A small markdown table with cells longer than ``cell_chars`` cut short (no extra dependency)."""
    if frame.empty:
        return "_(no rows)_"
    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        text = " ".join(text.split())  # one line: newlines and runs of spaces collapsed
        text = text if len(text) <= cell_chars else text[: cell_chars - 1] + "…"
        return text.replace("|", "\\|")  # escaped after the cut, which never splits an escape
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def metrics_summary(metrics: pd.DataFrame) -> str:
    """The metrics table as markdown: value, its standard error, its 95% CI and how it was computed (``ci_method``),
    n and errors; breakdown rows labelled."""
    if metrics.empty:
        return "_(no metrics)_"
    rows = []
    for row in metrics.itertuples(index=False):
        label = row.metric if row.breakdown_key is None or pd.isna(row.breakdown_key) else (
            f"{row.metric} [{row.breakdown_key}={row.breakdown_value}]")
        ci = "" if pd.isna(row.ci_low) else f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
        stderr = getattr(row, "stderr", None)
        method = getattr(row, "ci_method", None)
        rows.append({"metric": label, "value": f"{row.value:.3f}" if not pd.isna(row.value) else "",
                     "stderr": "" if stderr is None or pd.isna(stderr) else f"{stderr:.3f}",
                     "95% CI": ci, "CI method": "" if method is None or pd.isna(method) else str(method),
                     "n": row.n, "errors": row.errors})
    return markdown_table(pd.DataFrame(rows))


def metric_values(metrics: pd.DataFrame) -> dict[str, float | int]:
    """The overall rows (no breakdown) as numeric entries Dagster charts across materializations:
    ``metric/<name>`` = value, ``metric/<name>/ci_low``, ``…/ci_high`` (floats) and ``…/n`` (int). A missing value
    (NaN) gets no entry; breakdown rows get none (their count is unbounded); a metric listed twice keeps its first."""
    if metrics.empty:
        return {}
    overall = metrics[metrics["breakdown_key"].isna()].drop_duplicates("metric")
    entries: dict[str, float | int] = {}
    for row in overall.head(MAX_PLOTTED_METRICS).itertuples(index=False):
        key = f"{METRIC_PREFIX}{row.metric}"
        for name, value in ((key, row.value), (f"{key}/ci_low", row.ci_low), (f"{key}/ci_high", row.ci_high)):
            if value is not None and not pd.isna(value) and math.isfinite(float(value)):
                entries[name] = float(value)
        if row.n is not None and not pd.isna(row.n):
            entries[f"{key}/n"] = int(row.n)
    return entries


def mlflow_run_metadata(tracking_uri: str, run_id: str | None,
                        experiment_id: str | None = None) -> dict[str, dg.MetadataValue]:
    """The MLflow run as a link to its page when the tracking URI is an http(s) server, with a link to its
    experiment's list of runs, else its id as text (nothing when no run was logged). The experiment id is asked of
    the server when not given."""
    if not run_id:
        return {}
    if serves_pages(tracking_uri):
        try:
            experiment_id = experiment_id or experiment_of(tracking_uri, run_id)
        except Exception:  # the server went away after logging: the id still names the run
            return {MLFLOW_RUN_KEY: dg.MetadataValue.text(run_id)}
        return {MLFLOW_RUN_KEY: dg.MetadataValue.url(run_page_url(tracking_uri, experiment_id, run_id) or ""),
                MLFLOW_EXPERIMENT_KEY: dg.MetadataValue.url(experiment_page_url(tracking_uri, experiment_id) or "")}
    return {MLFLOW_RUN_KEY: dg.MetadataValue.text(run_id)}


def significant(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits (0, NaN and infinities unchanged)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def rounded_usage(metadata: dict[str, object]) -> dict[str, object]:
    """Metadata with its latencies (``…latency…_s``) rounded to ``LATENCY_DIGITS`` and its costs (``…_usd``) to
    ``COST_DIGITS`` significant digits; other entries (counts, labels) unchanged, the order kept."""
    def rounded(key: str, value: object) -> object:
        if not isinstance(value, float):
            return value
        if key.endswith("_usd"):
            return significant(value, COST_DIGITS)
        if "latency" in key and key.endswith("_s"):
            return significant(value, LATENCY_DIGITS)
        return value
    return {key: rounded(key, value) for key, value in metadata.items()}


GATES_KEY = "gates"
"""The metrics materialization's table of gate verdicts (the error-rate gate and the release gate)."""


def gates_markdown(gates: list[GateResult]) -> str:
    """Each gate's verdict as one markdown row: gate, model, passed/FAILED, observed, allowed and the reason (for a
    passed gate, its summary)."""
    if not gates:
        return "_(no gates)_"
    rows = [{"gate": gate.check, "model": gate.model, "verdict": "passed" if gate.passed else "FAILED",
             "observed": "" if gate.observed is None else f"{gate.observed:.4g}", "allowed": f"{gate.allowed:.4g}",
             "reason": gate.reason or gate.detail.get("summary") or gate.summary()}
            for gate in gates]
    return markdown_table(pd.DataFrame(rows), cell_chars=_REASON_CHARS)
