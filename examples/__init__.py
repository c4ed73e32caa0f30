"""Examples that ship with eval_pipeline: datasets, custom metrics and agent environments (``examples.environments``).

A package so that suites can name an environment by import path (``examples.environments.calculator:…``); the
``python`` environment kind finds it from the project root when the project is not on ``sys.path``.
"""
