"""The judge's messages for one trace-evaluator target, by the house prompt rules (``judging.prompt``).

Instructions name their fields as the service's placeholders do, in single braces (``{context}``,
``{assistant_turn}``, ...). Each is replaced by a block ``<<name-NONCE>>`` … ``<</name-NONCE>>`` whose content is
neutralized (delimiter look-alikes defanged, verdict-like labels marked as quoted); the nonce is a hash of the
evaluator name and the field texts. The system message holds the data rules and the answer format (a short
explanation, then ``Verdict: <label>`` as the last line); the rating scale with each label's meaning follows the
instructions in the user message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from eval_pipeline.judging.prompt import answer_format, data_rules, delimited_block, make_nonce
from eval_pipeline.traces.evaluators.base import Level

FIELD_RE = re.compile(r"\{(\w+)\}")
"""A placeholder: a word in single braces."""

LEVEL_FIELDS: dict[Level, tuple[str, ...]] = {
    Level.SESSION: ("context", "available_tools", "assertions", "expected_tool_trajectory"),
    Level.TRACE: ("context", "assistant_turn", "expected_response"),
    Level.TOOL_CALL: ("available_tools", "context", "tool_turn", "tool_call"),
}
"""The placeholders each level may use. ``tool_call`` is accepted as another name for the service's ``tool_turn``;
``assertions`` and ``expected_tool_trajectory`` (SESSION) and ``expected_response`` (TRACE) are ground truth."""

FIELD_READS: dict[str, str] = {"assertions": "assertions", "expected_tool_trajectory": "expectedTrajectory",
                               "expected_response": "expectedResponse"}
"""Ground-truth placeholders and the reference field each reads."""


def fields_in(instructions: str) -> list[str]:
    """The placeholder names used, in order of first use."""
    return list(dict.fromkeys(FIELD_RE.findall(instructions)))


def scale_text(scale: Sequence[tuple[str, str]]) -> str:
    """The rating scale as ``- label: meaning`` lines."""
    return "Ratings:\n" + "\n".join(f"- {label}: {meaning}" if meaning else f"- {label}" for label, meaning in scale)


def render_instructions(instructions: str, fields: Mapping[str, str], nonce: str) -> str:
    """``instructions`` with each ``{name}`` in ``fields`` replaced by its fenced block (others left as written)."""
    return FIELD_RE.sub(lambda m: delimited_block(m.group(1), fields[m.group(1)], nonce)
                        if m.group(1) in fields else m.group(0), instructions)


def trace_judge_messages(name: str, instructions: str, fields: Mapping[str, str],
                         scale: Sequence[tuple[str, str]]) -> tuple[dict[str, str], ...]:
    """(system, user) messages asking the judge to rate one target; deterministic in its inputs."""
    used = {key: fields[key] for key in fields_in(instructions) if key in fields}
    nonce = make_nonce(name, *(f"{key}\x00{text}" for key, text in sorted(used.items())))
    labels = [label for label, _meaning in scale]
    system = "\n\n".join([
        "You are an impartial evaluator of AI agents. You rate what the agent did according to the evaluation "
        "instructions you are given, fairly and consistently, without favouring any style, length or position.",
        data_rules(nonce),
        answer_format(labels),
    ])
    body = render_instructions(instructions, used, nonce)
    reminder = "End your reply with the line 'Verdict: <rating>', where <rating> is one of: " + ", ".join(labels) + "."
    return ({"role": "system", "content": system},
            {"role": "user", "content": f"{body}\n\n{scale_text(scale)}\n\n{reminder}"})
