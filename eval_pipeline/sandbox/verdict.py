"""The parent's end of the verdict channel: a fresh secret per run, and the one line that counts as a pass.

The parent draws 128 random bits for each run and hands them to the bootstrap on a pipe as its stdin (never in
argv, the environment or a file). The program's process writes ``passed <token>`` to a pipe of its own only after
the program (and its test) ran to their end (``child.runner``). The parent counts it only when that exact line is
on the verdict pipe and the bootstrap exited with 0 within the time; the program, which never learns the token,
cannot write it.
"""

from __future__ import annotations

import os

from eval_pipeline.sandbox.child.channel import VERDICT_PREFIX

MAX_VERDICT_BYTES = 1 << 20


def new_token() -> bytes:
    """The run's secret: 128 random bits, as hex."""
    return os.urandom(16).hex().encode()


def verdict_line(token: bytes) -> bytes:
    """The line the program's process writes when it ran to its end."""
    return VERDICT_PREFIX + token + b"\n"


def read_verdict(fd: int) -> bytes:
    """What is on the verdict pipe now (the writers are gone or killed); never waits for an escaped writer."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < MAX_VERDICT_BYTES:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
