"""Reading what a program printed, within a size: its end (a verifier's traceback), or its start and its end.

A program's stdout and stderr go to files in its sandbox (each capped at ``Limits.max_file_bytes`` by RLIMIT_FSIZE),
read back as UTF-8 with replacement characters and cut to a number of characters.
"""

from __future__ import annotations

import os
from pathlib import Path

_BYTES_PER_CHAR = 4  # UTF-8: reading 4 bytes per character is always enough


def tail(path: Path, chars: int) -> str:
    """The last ``chars`` characters of the file ('' when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - _BYTES_PER_CHAR * chars))
            return handle.read().decode("utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def head_and_tail(path: Path, chars: int) -> str:
    """The file's text ``clip``ped to ``chars`` characters ('' when it cannot be read). The whole file is read: it
    is never larger than ``Limits.max_file_bytes``."""
    try:
        return clip(path.read_bytes().decode("utf-8", errors="replace"), chars)
    except OSError:
        return ""


def clip(text: str, chars: int) -> str:
    """``text`` when it has at most ``chars`` characters, else its first and last parts around a cut marker."""
    if len(text) <= chars:
        return text
    half = chars // 2
    return f"{text[:half]}\n[... {len(text) - chars} characters cut ...]\n{text[len(text) - (chars - half):]}"
