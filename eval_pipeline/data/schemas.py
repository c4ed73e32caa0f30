"""The canonical tables that flow between stages, as pyarrow schemas."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

SAMPLES = pa.schema([
    ("sample_id", pa.string()),
    ("input", pa.string()),            # prompt text, or a JSON list of chat messages when input_kind == "messages"
    ("input_kind", pa.string()),       # "text" | "messages"
    ("reference", pa.string()),
    ("choices", pa.string()),          # JSON list, or null
    ("category", pa.string()),
    ("metadata", pa.string()),         # JSON object of the row's other fields
    ("source", pa.string()),           # file the row came from
    ("line", pa.int64()),
    ("row_hash", pa.string()),
])

GENERATIONS = pa.schema([
    ("sample_id", pa.string()),
    ("model", pa.string()),
    ("sample_index", pa.int64()),
    ("output", pa.string()),
    ("finish_reason", pa.string()),
    ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()),
    ("latency_s", pa.float64()),
    ("cost_usd", pa.float64()),
    ("request_hash", pa.string()),
    ("row_hash", pa.string()),
    ("cached", pa.bool_()),
    ("error", pa.string()),
])

SCORES = pa.schema([
    ("sample_id", pa.string()),
    ("model", pa.string()),
    ("sample_index", pa.int64()),
    ("scorer", pa.string()),
    ("score", pa.float64()),
    ("extracted", pa.string()),
    ("request_hash", pa.string()),
    ("error", pa.string()),
])

JUDGMENTS = pa.schema([
    ("sample_id", pa.string()),
    ("model", pa.string()),
    ("sample_index", pa.int64()),
    ("metric", pa.string()),
    ("score", pa.float64()),           # normalized to 0–1
    ("label", pa.string()),            # the rating's definition, as the judge gave it
    ("explanation", pa.string()),
    ("judge_model", pa.string()),
    ("judge_request_hash", pa.string()),
    ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()),
    ("cost_usd", pa.float64()),
    ("cached", pa.bool_()),
    ("error", pa.string()),
])

PAIRWISE = pa.schema([
    ("sample_id", pa.string()),
    ("model", pa.string()),
    ("baseline", pa.string()),
    ("sample_index", pa.int64()),
    ("model_first", pa.string()),      # the judge's pick (A | B | tie) with the model's answer shown as A
    ("baseline_first", pa.string()),   # ... with the baseline's answer shown as A
    ("winner", pa.string()),           # model | baseline | tie (order-inconsistent verdicts are ties)
    ("consistent", pa.bool_()),
    ("judge_model", pa.string()),
    ("judge_request_hashes", pa.string()),
    ("error", pa.string()),
])

COMPARISON = pa.schema([
    ("suite", pa.string()),
    ("metric", pa.string()),
    ("model", pa.string()),
    ("baseline", pa.string()),
    ("n", pa.int64()),
    ("model_value", pa.float64()),
    ("baseline_value", pa.float64()),
    ("diff", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("p_value", pa.float64()),         # from the same procedure as the CI: the CI excludes 0 exactly when p < 0.05
    ("p_holm", pa.float64()),          # Holm-adjusted over the metrics of one model × baseline
    ("test", pa.string()),             # mcnemar | paired_t | sign_test | position_consistency
    ("b", pa.int64()),
    ("c", pa.int64()),
])

ROLLOUTS = pa.schema([
    ("sample_id", pa.string()),        # the task's id (a row of the samples table)
    ("model", pa.string()),
    ("sample_index", pa.int64()),      # the group member: 0 .. eval_group_size - 1
    ("rollout_id", pa.string()),       # hash of task, model identity, environment, parameters and group member
    ("environment", pa.string()),      # the environment's kind and name, e.g. "python:examples.calculator"
    ("turns", pa.string()),            # JSON list, one object per turn: messages, tool calls/results, timings, tokens
    ("messages", pa.string()),         # the whole conversation as JSON chat messages (data.messages shape)
    ("num_turns", pa.int64()),         # the agent's turns
    ("reward", pa.float64()),          # null when the rollout errored
    ("success", pa.bool_()),           # reward >= success_threshold; null when the rollout errored
    ("termination", pa.string()),      # done | max_turns | timeout | budget | error
    ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()),
    ("latency_s", pa.float64()),       # wall time of the rollout
    ("cached", pa.bool_()),            # every model call of the rollout came from the cache
    ("request_hashes", pa.string()),   # JSON list of the model calls' cache keys, in order
    ("row_hash", pa.string()),
    ("error", pa.string()),
    ("error_source", pa.string()),     # agent | environment | user | budget: only agent errors count against the model
])

TRACES = pa.schema([
    ("session_id", pa.string()),       # the agent session (``session.id``); a rollout's id for rollouts
    ("trace_id", pa.string()),         # 32 hex digits: one trace is one turn of the session
    ("span_id", pa.string()),          # 16 hex digits
    ("parent_id", pa.string()),        # the parent span's id; null for a trace's root
    ("kind", pa.string()),             # agent | llm | tool | other (``traces.spans.SpanKind``)
    ("name", pa.string()),             # the span's name, e.g. "invoke_agent Strands Agents", "execute_tool search"
    ("operation", pa.string()),        # gen_ai.operation.name (invoke_agent, chat, execute_tool, ...) when given
    ("scope", pa.string()),            # the instrumentation scope, e.g. "strands.telemetry.tracer"
    ("service", pa.string()),          # resource service.name, e.g. "my_agent.DEFAULT"
    ("input", pa.string()),            # agent/llm: JSON list of chat messages (data.messages shape); tool: null
    ("output", pa.string()),           # agent/llm: JSON list of chat messages; tool: the tool's result as text
    ("tool_name", pa.string()),        # tool spans: gen_ai.tool.name
    ("tool_call_id", pa.string()),     # tool spans: gen_ai.tool.call.id
    ("tool_args", pa.string()),        # tool spans: the arguments as JSON text
    ("available_tools", pa.string()),  # agent/llm spans: JSON list of the tool names the agent was offered
    ("model", pa.string()),            # gen_ai.request.model
    ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()),
    ("start_ns", pa.int64()),          # epoch nanoseconds
    ("end_ns", pa.int64()),
    ("status", pa.string()),           # OK | ERROR | UNSET
    ("status_message", pa.string()),
    ("has_body", pa.bool_()),          # input/output were read from the span's event records (or attributes)
    ("attributes", pa.string()),       # JSON object of the span's attributes, as recorded
    ("source", pa.string()),           # the file, or the CloudWatch log group, the span came from
    ("line", pa.int64()),              # its line in the file (1-based); null for CloudWatch
    ("error", pa.string()),            # why this span could not be read whole; null when it was
])

TRACE_EVALUATIONS = pa.schema([
    ("session_id", pa.string()),
    ("trace_id", pa.string()),         # TRACE and TOOL_CALL results: the trace evaluated; null for SESSION
    ("span_id", pa.string()),          # TOOL_CALL results: the tool span evaluated
    ("model", pa.string()),            # the agent (the suite's model partition; the job's service name in the API)
    ("evaluator_id", pa.string()),     # Builtin.Helpfulness, a custom evaluator's id
    ("evaluator_name", pa.string()),
    ("level", pa.string()),            # SESSION | TRACE | TOOL_CALL
    ("value", pa.float64()),           # as the service reports it: the rating's value on its own scale
    ("score", pa.float64()),           # the value normalized to [0, 1] (what is averaged)
    ("label", pa.string()),
    ("explanation", pa.string()),
    ("ignored_reference_fields", pa.string()),  # JSON list: ground-truth fields given but not used
    ("test_scenario_id", pa.string()),
    ("judge_model", pa.string()),      # null for programmatic evaluators
    ("judge_request_hash", pa.string()),
    ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()),
    ("cost_usd", pa.float64()),
    ("cached", pa.bool_()),
    ("error_code", pa.string()),       # e.g. LogEventMissingException, MissingGroundTruth, JudgeReplyUnparseable
    ("error", pa.string()),            # the error message; null when the evaluator gave a value
])

METRICS = pa.schema([
    ("suite", pa.string()),
    ("model", pa.string()),
    ("metric", pa.string()),
    ("breakdown_key", pa.string()),    # null for the overall row
    ("breakdown_value", pa.string()),
    ("value", pa.float64()),
    ("stderr", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("n", pa.int64()),
    ("errors", pa.int64()),
    ("k", pa.int64()),
    ("ci_method", pa.string()),        # how ci_low/ci_high were computed: clopper_pearson | korn_graubard | t | ...
])

BY_STAGE: dict[str, pa.Schema] = {
    "samples": SAMPLES,
    "generations": GENERATIONS,
    "rollouts": ROLLOUTS,
    "traces": TRACES,
    "scores": SCORES,
    "judgments": JUDGMENTS,
    "metrics": METRICS,
    "comparison": COMPARISON,
    "pairwise": PAIRWISE,
}


def conform(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame as a table of exactly this schema: missing columns become nulls, extra columns are kept last."""
    frame = frame.reset_index(drop=True)
    columns = {}
    for field in schema:
        values = frame[field.name] if field.name in frame.columns else pd.Series([None] * len(frame))
        columns[field.name] = pa.array(values.astype(object).where(values.notna(), None).tolist(),
                                       type=field.type)
    table = pa.table(columns, schema=schema)
    for name in frame.columns:
        if name not in schema.names:
            values = frame[name]
            table = table.append_column(name, pa.array(values.astype(object).where(values.notna(), None).tolist()))
    return table

