"""An execution's results as tables: per item (prompt, each model's response and scores), per metric (mean, 95% CI,
n, errors) and, with a base model, the comparison (difference, CI, p-value); printed with ``rich`` when installed."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval_pipeline.judging.degenerate import degenerate_judges
from eval_pipeline.judging.explanation import clean_explanation
from eval_pipeline.sdk.outputs import read_table
from eval_pipeline.sdk.rollout_results import rollout_items

CELL_CHARS = 160
EXPLANATION_CHARS = 600
"""An explanation longer than this is cut (with "…") in the printed table; ``results()`` keeps it whole."""
PLAIN_WIDTH = 100
"""The width plain-text output wraps prompts, responses and explanations to."""
PIPE_WIDTH = 160
WARNING_COLUMNS = ["model", "metric", "reason"]


@dataclass
class EvaluationResults:
    """What ``EvaluationExecution.results()`` returns.

    Attributes:
        items: One row per item × model (below).
        summary: Per model × metric (below).
        comparison: Per model × metric against the base model (below).
        total_items: How many items the dataset has (``items`` holds one page of them).
        judge_warnings: The degenerate-judge flags (below).
    """

    items: pd.DataFrame
    """One row per item × model: sample_id, model, prompt, response, one score column per metric (NaN when the
    judgment failed; ``errors`` says why), and ``<metric> explanation`` columns when explanations are asked for
    (the judge's reasoning without its verdict line, fences or labels: ``judging.explanation``)."""
    summary: pd.DataFrame
    """Per model × metric: mean, ci_low, ci_high, ci_method (how the interval was computed), n, errors."""
    comparison: pd.DataFrame | None
    """Per model × metric against the baseline: diff, ci_low, ci_high, p_value, p_holm (Holm-adjusted over the
    model's metrics), test, n (None without one)."""
    total_items: int
    judge_warnings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=WARNING_COLUMNS))
    """Per flagged model × judge metric: why the judge looks degenerate (a warning, not a failure)."""


def collect(record: dict[str, Any], *, limit: int = 10, offset: int = 0,
            show_explanations: bool = False) -> EvaluationResults:
    """Read the execution's tables (its own copies once it has ended, else the suite's; the models whose tables
    exist) into the three result tables."""
    record = {**record, **(record.get("snapshot") or {})}
    models = [m["name"] for m in record["models"]]
    production = record.get("production_stage") or "generations"  # the task kind's table: generations, rollouts
    samples = None
    items, summaries, flags = [], [], []
    for model in models:
        outputs = record["outputs"].get(model, {})
        if samples is None and "samples" in outputs:
            samples = read_table(outputs["samples"])
        generations = read_table(outputs[production]) if production in outputs else None
        judgments = read_table(outputs["judgments"]) if "judgments" in outputs else None
        if samples is None or generations is None:
            continue
        items.append(ITEM_TABLES.get(production, _items)(samples, generations, judgments, show_explanations))
        flags += degenerate_judges(judgments, read_table(outputs["scores"]) if "scores" in outputs else None)
        metrics = read_table(outputs["metrics"]) if "metrics" in outputs else None
        if metrics is not None:
            summaries.append(_summary(metrics))
    ids = list(samples["sample_id"]) if samples is not None else []
    chosen = set(ids[offset:offset + limit])
    frame = pd.concat(items, ignore_index=True) if items else pd.DataFrame(columns=["sample_id", "model"])
    order = {sid: i for i, sid in enumerate(ids)}
    frame = frame[frame["sample_id"].isin(chosen)].copy()
    frame["_order"] = frame["sample_id"].map(order)
    frame["_model"] = frame["model"].map({m: i for i, m in enumerate(models)})
    frame = frame.sort_values(["_order", "_model"]).drop(columns=["_order", "_model"]).reset_index(drop=True)
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    warnings = pd.DataFrame([(f.model, f.metric, f.reason) for f in flags], columns=WARNING_COLUMNS)
    return EvaluationResults(items=frame, summary=summary, comparison=_comparison(record), total_items=len(ids),
                             judge_warnings=warnings)


def _prompt(text: str, kind: str) -> str:
    if kind != "messages":
        return text
    return "\n".join(f"{m['role']}: {m['content']}" for m in json.loads(text))


def _items(samples: pd.DataFrame, generations: pd.DataFrame, judgments: pd.DataFrame | None,
           explanations: bool) -> pd.DataFrame:
    first = generations.sort_values("sample_index", kind="stable").drop_duplicates("sample_id")
    prompts = {row.sample_id: _prompt(row.input, row.input_kind) for row in samples.itertuples(index=False)}
    frame = pd.DataFrame({"sample_id": first["sample_id"].to_numpy(), "model": first["model"].to_numpy(),
                          "prompt": first["sample_id"].map(prompts).to_numpy(),
                          "response": [o if pd.notna(o) else f"(no response: {e})"
                                       for o, e in zip(first["output"], first["error"], strict=True)]})
    if judgments is None or judgments.empty:
        return frame
    judged = judgments[judgments["sample_index"] == 0]
    metrics = list(dict.fromkeys(judged["metric"]))
    scores = judged.drop_duplicates(["sample_id", "metric"]).pivot(index="sample_id", columns="metric", values="score")
    for metric in metrics:
        frame[metric] = frame["sample_id"].map(scores[metric]).astype(float)
    if explanations:
        for metric in metrics:
            rows = judged[judged["metric"] == metric].set_index("sample_id")["explanation"]
            frame[f"{metric} explanation"] = frame["sample_id"].map(rows).map(_readable_explanation)
    failed = judged[judged["error"].notna()]
    errors = failed.groupby("sample_id")[["metric", "error"]].apply(
        lambda g: "; ".join(f"{m}: {e}" for m, e in zip(g["metric"], g["error"], strict=True)))
    frame["errors"] = frame["sample_id"].map(errors) if len(failed) else None
    return frame


def _readable_explanation(text: Any) -> Any:
    """A stored explanation cleaned for reading (tables written before the judge's explanations were cleaned at
    the source still hold fences and labels); a missing one stays missing."""
    return (clean_explanation(text) or None) if isinstance(text, str) else text


ITEM_TABLES = {"generations": _items, "rollouts": rollout_items}
"""The items table of each production stage (a rollout execution's items are its rollouts)."""


def _summary(metrics: pd.DataFrame) -> pd.DataFrame:
    overall = metrics[metrics["breakdown_key"].isna()]
    return pd.DataFrame({"model": overall["model"], "metric": overall["metric"], "mean": overall["value"],
                         "ci_low": overall["ci_low"], "ci_high": overall["ci_high"],
                         "ci_method": overall.get("ci_method"), "n": overall["n"],
                         "errors": overall["errors"]}).reset_index(drop=True)


def _comparison(record: dict[str, Any]) -> pd.DataFrame | None:
    path = (record.get("comparison_outputs") or {}).get("comparison")
    table = read_table(path) if path else None
    if table is None or table.empty:
        return None
    models = [m["name"] for m in record["models"]]
    mine = table[table["model"].isin(models) & (table["baseline"] == record.get("baseline"))]
    columns = ["model", "baseline", "metric", "diff", "ci_low", "ci_high", "p_value", "p_holm", "test", "n"]
    return mine.reindex(columns=columns).reset_index(drop=True)


def render(results: EvaluationResults, title: str, offset: int, *, use_rich: bool | None = None) -> None:
    """Print the tables: with rich when it is installed (``use_rich`` None), else as plain text."""
    if use_rich is None:
        try:
            import rich  # noqa: F401
        except ImportError:
            use_rich = False
        else:
            use_rich = True
    (_render_rich if use_rich else _render_plain)(results, title, offset)


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    text = str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"


def _ci(row: Any) -> str:
    return "-" if pd.isna(row["ci_low"]) else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _explanation_lines(text: str, width: int | None) -> list[str]:
    """An explanation under its score: cleaned, cut at ``EXPLANATION_CHARS``, indented by two spaces; with
    ``width``, each paragraph wrapped to it (plain text), else one line per paragraph (rich wraps them)."""
    cleaned = clean_explanation(text)
    if len(cleaned) > EXPLANATION_CHARS:
        cleaned = cleaned[:EXPLANATION_CHARS - 1].rstrip() + "…"
    lines = []
    for paragraph in cleaned.split("\n"):
        if not paragraph.strip():
            continue
        if width is None:
            lines.append(f"  {paragraph}")
        else:
            lines += textwrap.wrap(paragraph, width, initial_indent="  ", subsequent_indent="  ",
                                   break_on_hyphens=False) or [""]
    return lines


def _shown_items(results: EvaluationResults, offset: int,
                 width: int | None = None) -> tuple[str, pd.DataFrame]:
    """A caption, and the items as display rows: item, model, prompt, response, and one ``scores`` cell listing
    each metric's score (with its explanation, or its error, below it); ``width``: wrap explanations to it."""
    items = results.items
    n = items["sample_id"].nunique()
    caption = f"items {offset + 1}-{offset + n} of {results.total_items}" if n else "no items"
    fixed = ("sample_id", "model", "prompt", "response", "errors")
    metrics = [c for c in items.columns if c not in fixed and not c.endswith(" explanation")]
    rows = []
    for row in items.to_dict("records"):
        errors = dict(part.split(": ", 1) for part in (row.get("errors") or "").split("; ") if ": " in part)
        lines = []
        for metric in metrics:
            value = row[metric]
            lines.append(f"{metric}: {_cell(value)}" + (f" (error: {_cell(errors[metric])})"
                                                         if pd.isna(value) and metric in errors else ""))
            explanation = row.get(f"{metric} explanation")
            if isinstance(explanation, str) and explanation.strip():
                lines += _explanation_lines(explanation, width)
        rows.append({"item": row["sample_id"], "model": row["model"], "prompt": _cell(row["prompt"]),
                     "response": _cell(row["response"]), "scores": "\n".join(lines)})
    return caption, pd.DataFrame(rows, columns=["item", "model", "prompt", "response", "scores"])


def _summary_rows(results: EvaluationResults) -> pd.DataFrame:
    frame = results.summary
    if frame.empty:
        return frame
    return pd.DataFrame({"model": frame["model"], "metric": frame["metric"], "mean": frame["mean"].map(_cell),
                         "95% CI": frame.apply(_ci, axis=1), "CI method": frame["ci_method"].map(_cell),
                         "n": frame["n"], "errors": frame["errors"]})


def _comparison_rows(results: EvaluationResults) -> pd.DataFrame | None:
    frame = results.comparison
    if frame is None:
        return None
    return pd.DataFrame({"model": frame["model"], "vs": frame["baseline"], "metric": frame["metric"],
                         "diff": frame["diff"].map(lambda v: "-" if pd.isna(v) else f"{v:+.3f}"),
                         "95% CI": frame.apply(_ci, axis=1),
                         "p-value": frame["p_value"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}"),
                         "Holm p": frame["p_holm"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}"),
                         "test": frame["test"], "n": frame["n"]})


def _warning_lines(results: EvaluationResults) -> list[str]:
    """One line per degenerate-judge flag, under the metrics."""
    return [f"judge warning: {row.model} / {row.metric}: {row.reason}"
            for row in results.judge_warnings.itertuples(index=False)]


def _render_rich(results: EvaluationResults, title: str, offset: int) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not (console.is_terminal or console.is_jupyter):
        console = Console(width=PIPE_WIDTH)  # a file or a pipe: no terminal to fit, keep rows readable
    caption, items = _shown_items(results, offset)
    table = Table(title=Text(f"{title}: {caption}"), show_lines=True)
    for column in items.columns:
        table.add_column(str(column), overflow="fold")
    for row in items.itertuples(index=False):
        table.add_row(*(Text(str(v)) for v in row))  # text, not markup: "[/INST]" in a reply is shown as written
    console.print(table)
    for name, frame in (("Metrics", _summary_rows(results)), ("Comparison with the base model",
                                                             _comparison_rows(results))):
        if frame is None or frame.empty:
            continue
        summary = Table(title=name)
        for column in frame.columns:
            summary.add_column(str(column))
        for row in frame.itertuples(index=False):
            summary.add_row(*(Text(str(v)) for v in row))
        console.print(summary)
    for line in _warning_lines(results):
        console.print(line, style="bold yellow", markup=False, highlight=False, soft_wrap=True)


def _labelled(label: str, text: str) -> str:
    """``  label: text`` with the text wrapped to ``PLAIN_WIDTH`` and its further lines aligned under its first."""
    indent = " " * 12
    lines = []
    for paragraph in str(text).split("\n"):
        lines += textwrap.wrap(paragraph, PLAIN_WIDTH - len(indent), break_on_hyphens=False) or [""]
    head = f"  {label}:".ljust(len(indent))
    return "\n".join((head if i == 0 else indent) + line for i, line in enumerate(lines)).rstrip()


def _render_plain(results: EvaluationResults, title: str, offset: int) -> None:
    caption, items = _shown_items(results, offset, width=PLAIN_WIDTH - 4)
    print(f"{title}: {caption}")
    for row in items.itertuples(index=False):
        print(f"\n[{row.item}] {row.model}\n{_labelled('prompt', row.prompt)}\n{_labelled('response', row.response)}")
        print("\n".join(f"  {line}" for line in row.scores.splitlines()))
    for name, frame in (("Metrics", _summary_rows(results)), ("Comparison with the base model",
                                                             _comparison_rows(results))):
        if frame is not None and not frame.empty:
            print(f"\n{name}")
            print(frame.to_string(index=False))
    for line in _warning_lines(results):
        print(line)
