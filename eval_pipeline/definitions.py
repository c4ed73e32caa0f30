"""The code location: every suite in the suites folder (``$EVAL_PIPELINE_SUITES``, default ``./evals``)."""

from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import load_suites

defs = build_definitions(load_suites())
