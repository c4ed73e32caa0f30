"""Suites' tables written straight to a Parquet outputs folder, for the report's tests: a judged two-model
generate suite with errors, missing scores and a comparison; the layout is the IO manager's
(``<base>/<suite>/<stage>/<model>.parquet``, or ``<model>/<shard>.parquet`` when sharded)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from eval_pipeline.data.schemas import BY_STAGE, conform
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.spec import Suite

CATEGORIES = ("math", "geo", "misc")


def write_stage(base: Path, suite: str, stage: str, frame: pd.DataFrame, model: str | None = None,
                shards: int = 1) -> None:
    """One stage's table where the IO manager keeps it (split into ``shards`` files by row when > 1)."""
    folder = base / suite / stage
    folder.mkdir(parents=True, exist_ok=True)
    if model is None:
        pq.write_table(conform(frame, BY_STAGE[stage]), folder.with_suffix(".parquet"))
    elif shards == 1:
        pq.write_table(conform(frame, BY_STAGE[stage]), folder / f"{model}.parquet")
    else:
        (folder / model).mkdir(exist_ok=True)
        for shard in range(shards):
            pq.write_table(conform(frame.iloc[shard::shards], BY_STAGE[stage]), folder / model / f"{shard}.parquet")


def judged_suite(folder: Path, name: str = "rep") -> Suite:
    """A generate suite of two Bedrock models with two scorers and a judge (nothing is called: tables are written)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text(json.dumps({"id": "q0", "prompt": "p", "answer": "a"}) + "\n")
    (folder / f"{name}.yaml").write_text(f"""suite: {name}
dataset: {{uri: qa.jsonl}}
models:
  - {{name: base, backend: bedrock, model: amazon.nova-micro-v1:0}}
  - {{name: tuned, backend: bedrock, model: amazon.nova-lite-v1:0}}
baseline: base
scorers: [contains, exact_match]
judge:
  model: {{backend: bedrock, model: amazon.nova-pro-v1:0}}
  builtin_metrics: [Correctness]
breakdown_keys: [category]
""")
    return load_suite(folder / f"{name}.yaml")


def judged_tables(n: int = 24) -> dict[str, object]:
    """The tables of ``judged_suite``: ``samples``, and per model ``generations``, ``scores``, ``judgments``,
    ``metrics``; and ``comparison``. Errors: base's generation of item 5, tuned's of item 7, base's exact_match of
    item 3 (scorer error), tuned's judgment of item 4 (judge error); tuned's contains score of item 10 is missing
    (no row); judge scores are 0, 0.5 or 1."""
    samples = pd.DataFrame({
        "sample_id": [f"q{i}" for i in range(n)], "input": [f"What is {i} plus {i}?" for i in range(n)],
        "input_kind": "text", "reference": [str(2 * i) for i in range(n)],
        "category": [CATEGORIES[i % 3] for i in range(n)], "metadata": "{}"})
    right = {"base": lambda i: i % 2 == 0, "tuned": lambda i: i % 3 != 0}
    broken = {"base": 5, "tuned": 7}
    tables: dict[str, object] = {"samples": samples}
    for model in ("base", "tuned"):
        outputs = [None if i == broken[model] else (str(2 * i) if right[model](i) else "I am not sure")
                   for i in range(n)]
        generations = pd.DataFrame({
            "sample_id": samples["sample_id"], "model": model, "sample_index": 0, "output": outputs,
            "finish_reason": ["error" if o is None else "stop" for o in outputs],
            "error": ["ThrottlingException: slow down" if o is None else None for o in outputs]})
        scores, judgments = [], []
        for i, output in enumerate(outputs):
            for scorer in ("contains", "exact_match"):
                if model == "tuned" and scorer == "contains" and i == 10:
                    continue
                error = ("generation failed" if output is None else
                         "scorer crashed: bad regex" if (model, scorer, i) == ("base", "exact_match", 3) else None)
                score = None if error else float(output == str(2 * i))
                scores.append({"sample_id": f"q{i}", "model": model, "sample_index": 0, "scorer": scorer,
                               "score": score, "error": error})
            error = ("generation failed" if output is None else
                     "judge reply unparseable: no verdict line" if (model, i) == ("tuned", 4) else None)
            score = None if error else (1.0 if output == str(2 * i) else 0.5 if i % 4 == 1 else 0.0)
            label = None if score is None else {1.0: "Correct", 0.5: "Partially correct", 0.0: "Incorrect"}[score]
            judgments.append({"sample_id": f"q{i}", "model": model, "sample_index": 0, "metric": "Correctness",
                              "score": score, "label": label,
                              "explanation": None if error else f"{model} said {output!r}; the reference is {2 * i}.",
                              "judge_model": "bedrock:amazon.nova-pro-v1:0", "error": error})
        scores_frame, judgments_frame = pd.DataFrame(scores), pd.DataFrame(judgments)
        tables[model] = {"generations": generations, "scores": scores_frame, "judgments": judgments_frame,
                         "metrics": _metrics(model, samples, scores_frame, judgments_frame)}
    tables["comparison"] = pd.DataFrame([
        {"suite": "rep", "metric": "contains", "model": "tuned", "baseline": "base", "n": 20, "model_value": 0.6,
         "baseline_value": 0.5, "diff": 0.1, "ci_low": -0.1, "ci_high": 0.3, "p_value": 0.4, "p_holm": 0.8,
         "test": "mcnemar", "b": 3, "c": 1},
        {"suite": "rep", "metric": "Correctness", "model": "tuned", "baseline": "base", "n": 20, "model_value": 0.7,
         "baseline_value": 0.4, "diff": 0.3, "ci_low": 0.05, "ci_high": 0.5, "p_value": 0.01, "p_holm": 0.02,
         "test": "paired_t", "b": None, "c": None}])
    return tables


def _metrics(model: str, samples: pd.DataFrame, scores: pd.DataFrame, judgments: pd.DataFrame) -> pd.DataFrame:
    """Plain means per metric, overall and per category (the report copies whatever the table says)."""
    rows = pd.concat([scores.rename(columns={"scorer": "metric"}), judgments], ignore_index=True)
    rows = rows.merge(samples[["sample_id", "category"]], on="sample_id")
    out = []
    for (metric, key, value), part in [((m, None, None), p) for m, p in rows.groupby("metric")] + [
            ((m, "category", c), p) for (m, c), p in rows.groupby(["metric", "category"])]:
        valid = part["score"].dropna()
        mean = float(valid.mean())
        out.append({"suite": "rep", "model": model, "metric": metric, "breakdown_key": key, "breakdown_value": value,
                    "value": mean, "stderr": 0.1, "ci_low": max(0.0, mean - 0.2), "ci_high": min(1.0, mean + 0.2),
                    "n": len(valid), "errors": int(part["error"].notna().sum()), "ci_method": "t"})
    return pd.DataFrame(out)


def write_judged(base: Path, tables: dict[str, object], suite: str = "rep", shards: int = 1) -> None:
    """``judged_tables`` written under ``base`` (the per-item stages in ``shards`` files per model)."""
    write_stage(base, suite, "samples", tables["samples"])  # type: ignore[arg-type]
    for model in ("base", "tuned"):
        for stage, frame in tables[model].items():  # type: ignore[union-attr]
            write_stage(base, suite, stage, frame, model, shards=1 if stage == "metrics" else shards)
    write_stage(base, suite, "comparison", tables["comparison"])  # type: ignore[arg-type]
