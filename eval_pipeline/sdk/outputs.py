"""Where an execution's tables live, reading them (local or S3), and its Bedrock-shaped output JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval_pipeline.assets.suite_assets import model_stages, suite_comparison_stages
from eval_pipeline.data.parquet_files import read_table
from eval_pipeline.judging.bedrock_output import write_bedrock_output
from eval_pipeline.resources.parquet_io import ParquetIOManager
from eval_pipeline.suites.spec import Suite


def table_paths(suite: Suite, base_path: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Per model, each stage's Parquet path; and the comparison stages' paths (none without a baseline)."""
    io = ParquetIOManager(base_path=base_path)
    per_model = {}
    for spec in suite.models:
        stages = {"samples": io.path_for([suite.suite, "samples"])}
        stages |= {stage: io.path_for([suite.suite, stage], spec.name) for stage in model_stages(suite)[1:]}
        per_model[spec.name] = stages
    return per_model, {stage: io.path_for([suite.suite, stage]) for stage in suite_comparison_stages(suite)}


def bedrock_output_paths(suite: str, output_root: str, execution_id: str, models: list[str]) -> dict[str, str]:
    """``<root>/<suite>/bedrock_output/<id>/<model>_output.jsonl`` per model."""
    root = output_root.rstrip("/")
    return {m: f"{root}/{suite}/bedrock_output/{execution_id}/{m}_output.jsonl" for m in models}




def snapshot_tables(record: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Copy the execution's tables (they are the suite's, and a later execution of the suite overwrites them) to
    ``folder``; returns ``{"outputs": {model: {stage: path}}, "comparison_outputs": {stage: path}}`` of the copies."""
    from upath import UPath

    def copy(source: str, target: Path) -> str | None:
        origin = UPath(source)
        if not origin.exists():
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        with origin.open("rb") as handle:
            target.write_bytes(handle.read())
        return str(target)

    outputs = {model: {stage: copied for stage, path in stages.items()
                       if (copied := copy(path, folder / model / f"{stage}.parquet"))}
               for model, stages in record["outputs"].items()}
    comparison = {stage: copied for stage, path in (record.get("comparison_outputs") or {}).items()
                  if (copied := copy(path, folder / f"{stage}.parquet"))}
    return {"outputs": outputs, "comparison_outputs": comparison}


def write_bedrock_outputs(record: dict[str, Any], models: list[str]) -> dict[str, str]:
    """The Bedrock-shaped JSONL of each listed model that has judgments; returns model -> path written."""
    written = {}
    identifiers = {m["name"]: m["model_identifier"] for m in record["models"]}
    for model in models:
        if model not in (record.get("bedrock_outputs") or {}):
            continue  # an evaluator that writes none (rollouts have no judged generations)
        tables = {stage: read_table(record["outputs"][model][stage]) for stage in ("samples", "generations",
                                                                                      "judgments")}
        if any(table is None for table in tables.values()):
            continue
        written[model] = write_bedrock_output(record["bedrock_outputs"][model], tables["samples"],
                                              tables["generations"], tables["judgments"],
                                              model_identifier=identifiers[model])
    return written
