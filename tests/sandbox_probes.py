"""Programs that probe the sandbox from inside, shared by the verifier's and the general API's tests."""

from __future__ import annotations

import hashlib


def token_hunter(token: str, planted: str) -> str:
    """Python source that knows only the SHA-256 of ``token`` and of ``planted`` and looks for either in its argv,
    environment, stdin, every file below its working directory's parent, every descriptor it can read and its
    parent's command line and environment; it prints ``TOKEN <where>`` or ``PLANTED <where>`` for each find."""
    digests = {hashlib.sha256(t.encode()).hexdigest(): label for t, label in ((token, "TOKEN"), (planted, "PLANTED"))}
    return f'''
import hashlib, os, re, sys
digests = {digests!r}
def scan(data, where):
    for match in re.finditer(rb"[0-9a-f]{{32}}", data):
        label = digests.get(hashlib.sha256(match.group()).hexdigest())
        if label:
            print(label, where)
def read(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a pipe with no data must not block
    except OSError:
        return b""
    try:
        return os.read(fd, 1 << 20)
    except OSError:
        return b""
    finally:
        os.close(fd)
scan(" ".join(sys.argv).encode() + read("/proc/self/cmdline") + read("/proc/self/environ"), "argv/env")
scan(os.read(0, 4096), "stdin")
for folder, _, names in os.walk(os.path.dirname(os.getcwd())):
    for name in names:
        scan(read(os.path.join(folder, name)), name)
for name in os.listdir("/proc/self/fd"):
    scan(read("/proc/self/fd/" + name), "fd " + name)
if os.getppid() > 0:
    scan(read(f"/proc/{{os.getppid()}}/cmdline") + read(f"/proc/{{os.getppid()}}/environ"), "parent")
'''
