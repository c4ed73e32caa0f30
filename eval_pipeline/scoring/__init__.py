"""Deterministic scorers and the ``scores`` table."""
