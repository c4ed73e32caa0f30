"""The code location: every suite in the suites folder (``$EVAL_PIPELINE_SUITES``, default ``./evals``), plus the
suites the Python SDK wrote to ``<EVAL_PIPELINE_HOME>/sdk_suites``."""

from eval_pipeline.sdk.suite_files import load_sdk_suites
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import load_suites

suites = load_suites()
defs = build_definitions(suites + load_sdk_suites(exclude={s.suite for s in suites}))
