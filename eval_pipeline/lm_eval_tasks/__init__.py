"""lm-evaluation-harness task YAMLs and prompt templates: Jinja ``doc_to_text``/``doc_to_target``/``doc_to_choice``
over an item's fields, few-shot contexts sampled as lm-eval samples them, its filters and metrics. Plain library
code (no Dagster); ``tasks/lm_eval.py`` runs a translated task, ``suites`` uses the same templates for ``prompt``."""
