"""The child's side of the sandbox: the bootstrap that isolates itself and runs the program under its limits.

These modules run in the sandbox's own ``python -I -S`` interpreter, imported as the top-level package ``child``
(the bootstrap puts ``eval_pipeline/sandbox`` on ``sys.path`` for that one import and takes it off again), so they
import only the standard library, and as little of it as they can: every run pays for its start-up. No module of
``eval_pipeline/sandbox`` may be named like a standard-library module, or it would shadow it during that import.
"""
