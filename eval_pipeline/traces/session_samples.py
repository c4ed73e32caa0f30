"""Recorded sessions as the ``samples`` table of a traces suite: one row per session (its first prompt, its
testScenarioId as ``category``, its service and ground truth in ``metadata``), and back.

A session the ground truth names but the source lacks is a row too (``metadata.missing``), so that every evaluator
reports it instead of it silently dropping out.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from eval_pipeline.traces.ground_truth import ExpectedTurn, GroundTruth, SessionMetadata
from eval_pipeline.traces.sessions import Session

RESERVED_METADATA = ("service", "traces", "spans", "missing", "testScenarioId", "groundTruth")
"""The keys a session's samples row writes in ``metadata`` next to its ground truth's own ``metadata`` fields (which
breakdown keys read); ours win over a field of the same name."""


def _row_metadata(truth: SessionMetadata | None, **own: object) -> dict[str, Any]:
    if truth is None:
        return dict(own)
    ground = truth.ground_truth
    return {**truth.metadata, **own, "testScenarioId": truth.test_scenario_id,
            "groundTruth": {"assertions": list(ground.assertions),
                            "expectedToolNames": (list(ground.expected_tool_names)
                                                  if ground.expected_tool_names is not None else None),
                            "turns": [{"prompt": t.prompt, "expectedResponse": t.expected_response}
                                      for t in ground.turns]}}


def session_row(session: Session, truth: SessionMetadata | None) -> dict[str, object]:
    first = session.turns[0] if session.turns else None
    metadata = _row_metadata(truth, service=session.service, traces=len(session.turns), spans=session.span_count)
    digest = hashlib.sha256(json.dumps([session.session_id, session.span_count, session.start_ns, session.end_ns,
                                        metadata], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"sample_id": session.session_id, "input": first.prompt if first else None, "input_kind": "text",
            "reference": _first_expected(truth), "choices": None,
            "category": truth.test_scenario_id if truth else None, "metadata": json.dumps(metadata, default=str),
            "source": ",".join(session.sources) or None, "line": None, "row_hash": digest}


def missing_row(truth: SessionMetadata) -> dict[str, object]:
    metadata = _row_metadata(truth, service=None, missing=True)
    digest = hashlib.sha256(json.dumps(metadata, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"sample_id": truth.session_id, "input": None, "input_kind": "text", "reference": _first_expected(truth),
            "choices": None, "category": truth.test_scenario_id, "metadata": json.dumps(metadata, default=str),
            "source": None, "line": None, "row_hash": digest}


def _first_expected(truth: SessionMetadata | None) -> str | None:
    if truth is None:
        return None
    return next((t.expected_response for t in truth.ground_truth.turns if t.expected_response), None)


def _metadata(samples: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {row.sample_id: json.loads(row.metadata or "{}") for row in samples.itertuples(index=False)}


def service_sessions(samples: pd.DataFrame, service: str | None) -> set[str]:
    """The sessions of ``service`` (all of them for None)."""
    return {sid for sid, meta in _metadata(samples).items()
            if not meta.get("missing") and (service is None or meta.get("service") == service)}


def missing_sessions(samples: pd.DataFrame) -> list[str]:
    return [sid for sid, meta in _metadata(samples).items() if meta.get("missing")]


def sample_truths(samples: pd.DataFrame) -> dict[str, SessionMetadata]:
    """The ground truth stored with each session's samples row."""
    truths = {}
    for sid, meta in _metadata(samples).items():
        ground = meta.get("groundTruth")
        if ground is None:
            continue
        expected = ground.get("expectedToolNames")
        truth = GroundTruth(assertions=tuple(ground.get("assertions") or ()),
                            expected_tool_names=tuple(expected) if expected is not None else None,
                            turns=tuple(ExpectedTurn(t.get("prompt"), t.get("expectedResponse"))
                                        for t in ground.get("turns") or ()))
        user = {k: v for k, v in meta.items() if k not in RESERVED_METADATA}
        truths[sid] = SessionMetadata(sid, meta.get("testScenarioId"), user, truth)
    return truths
