"""The judge's explanation as a person reads it: the reply with its verdict line taken out and its wrappers removed.

A judge often wraps its reasoning: markdown fences (```` ```explanation ```` … ```` ``` ````, sometimes the same
opening twice, or a fence left empty once the verdict line inside it is taken out), tags (``<explanation>``,
``<verdict>``), a leading ``Explanation:`` label, the ``1.`` of the requested reply format, or an echo of the
prompt's data-block delimiters (``<<prediction-0123456789ab>>``). ``clean_explanation`` removes those wrappers and
keeps every word of the text; a fence with a programming language (```` ```python ````) is code the judge quotes,
and stays.
"""

from __future__ import annotations

import re

PROSE_FENCE_INFO = frozenset({"", "explanation", "reasoning", "rationale", "justification", "assessment",
                              "evaluation", "analysis", "verdict", "answer", "response", "output", "text", "txt",
                              "plain", "plaintext", "markdown", "md"})
"""Fence info strings that mark prose, not code: such fences are dropped (their text is kept)."""
_FENCE_RE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`~]*)[^`\n]*$")
_TAG_RE = re.compile(r"</?\s*(?:explanation|reasoning|rationale|justification|assessment|analysis|verdict)\s*>",
                     re.IGNORECASE)
_DELIMITER_RE = re.compile(r"<<\s*/?\s*[A-Za-z_][\w]*-[0-9a-f]{12}\s*>>")
"""An echo of the prompt's data-block delimiters (``judging/prompt.py``: ``<<name-NONCE>>``, 12 hex digits)."""
_LABEL_RE = re.compile(r"^[ \t>#*_\-]*(?:explanation|reasoning|rationale|justification)[ \t*_]*[:：][ \t*_]*\n?",
                       re.IGNORECASE)
_FIRST_ITEM_RE = re.compile(r"^1[.)][ \t]+")
_OTHER_ITEM_RE = re.compile(r"^[ \t]*[2-9][.)][ \t]", re.MULTILINE)


def _drop_prose_fences(text: str) -> str:
    """``text`` without the fence lines of prose blocks; code blocks (a language after the fence) kept whole."""
    kept: list[str] = []
    code_fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE_RE.match(line)
        if match is None:
            kept.append(line)
            continue
        fence, info = match.group("fence"), match.group("info").casefold()
        if code_fence is not None:  # inside quoted code: a bare fence as long as the opening one closes it
            kept.append(line)
            if not info and fence[0] == code_fence[0] and len(fence) >= len(code_fence):
                code_fence = None
        elif info not in PROSE_FENCE_INFO:
            kept.append(line)
            code_fence = fence
    return "\n".join(kept)


def clean_explanation(text: str | None) -> str:
    """``text`` without fences around prose, explanation tags, echoed data-block delimiters, a leading
    ``Explanation:`` label (once or repeated) or a lone ``1.``; trailing spaces and runs of blank lines removed.
    Idempotent: a clean explanation comes back unchanged."""
    if not text:
        return ""
    cleaned = _drop_prose_fences(text.replace("\r\n", "\n"))
    cleaned = _DELIMITER_RE.sub("", _TAG_RE.sub("", cleaned))
    cleaned = "\n".join(line.rstrip() for line in cleaned.split("\n")).strip()
    while (label := _LABEL_RE.match(cleaned)) is not None:
        cleaned = cleaned[label.end():].lstrip()
    if _FIRST_ITEM_RE.match(cleaned) and not _OTHER_ITEM_RE.search(cleaned):
        cleaned = _FIRST_ITEM_RE.sub("", cleaned, count=1)  # the "1." of the requested format, its "2." the verdict
    return re.sub(r"\n{3,}", "\n\n", cleaned).strip()
