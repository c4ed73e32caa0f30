"""The child's end of the verdict channel: the run's token arrives on stdin, read before anything else.

The parent writes the token to a pipe it hands over as stdin and closes; the bootstrap reads it first, then points
stdin at the program's input (a file in the sandbox) or /dev/null, so the token is never in argv, the environment,
a file or a descriptor the program can find. ``VERDICT_PREFIX + token + b"\\n"`` is the verdict line.
"""

from __future__ import annotations

import os

VERDICT_PREFIX = b"passed "
MIN_TOKEN_BYTES = 32


def read_token(stdin_path: str) -> bytes:
    """The run's token from stdin (a pipe the parent filled and closed); stdin is ``stdin_path`` (or /dev/null
    when empty) afterwards."""
    token = os.read(0, 256).strip()
    replacement = os.open(stdin_path or os.devnull, os.O_RDONLY)
    os.dup2(replacement, 0)
    os.close(replacement)
    if len(token) < MIN_TOKEN_BYTES:
        raise RuntimeError("no verdict token on stdin")
    return token
