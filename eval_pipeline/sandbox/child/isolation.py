"""What the operating system enforces on the program: namespaces, a read-only filesystem, no capabilities, rlimits.

Each mechanism is applied where the kernel allows it and skipped silently where it does not; the bootstrap reports
the names of those in force (``netns``, ``pidns``, ``readonly_fs``, ``no_capabilities``, plus ``rlimits`` and
``pids_cgroup``), so a result always says what contained its program.
"""

from __future__ import annotations

import os
import resource
import sys

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 1 << 14, 1 << 18
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _CAPABILITY_VERSION_3 = 4, 24, 38, 0x20080522
_MOUNT_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}


def isolate(work: str) -> list[str]:
    """Enter new network, PID and mount namespaces where the kernel allows; the names of those entered."""
    if not sys.platform.startswith("linux"):
        return []
    user = _CLONE_NEWUSER if os.geteuid() != 0 else 0  # unprivileged: only inside a user namespace of our own
    uid, gid = os.geteuid(), os.getegid()
    mount_ns = os.stat("/proc/self/ns/mnt").st_ino
    for flags in (_CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID, _CLONE_NEWNET | _CLONE_NEWPID, _CLONE_NEWNET):
        if _unshare(flags | user):
            break
    else:
        return []
    if user:  # map our own ids, so that files can still be created in the working directory
        try_write("/proc/self/setgroups", "deny")
        try_write("/proc/self/uid_map", f"{uid} {uid} 1")
        try_write("/proc/self/gid_map", f"{gid} {gid} 1")
    entered = ["netns"] + (["pidns"] if flags & _CLONE_NEWPID else [])
    # never touch a mount unless we are certainly in a mount namespace of our own
    if flags & _CLONE_NEWNS and os.stat("/proc/self/ns/mnt").st_ino != mount_ns and _readonly_outside(work):
        entered.append("readonly_fs")
    return entered


def drop_capabilities() -> bool:
    """Give up every capability for good (effective, permitted, inheritable and the bounding set) and set
    no_new_privs: root then can no longer raise its limits, remount, leave its cgroup or regain them by exec.
    Also not dumpable: without CAP_SYS_PTRACE the program cannot read this process's memory (/proc/<pid>/mem)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ulong = ctypes.c_ulong
        libc.prctl(ctypes.c_int(_PR_SET_NO_NEW_PRIVS), ulong(1), ulong(0), ulong(0), ulong(0))
        libc.prctl(ctypes.c_int(_PR_SET_DUMPABLE), ulong(0), ulong(0), ulong(0), ulong(0))
        for capability in range(64):  # EINVAL past the kernel's last capability
            libc.prctl(ctypes.c_int(_PR_CAPBSET_DROP), ulong(capability), ulong(0), ulong(0), ulong(0))
        header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
        return libc.capset(header, (ctypes.c_uint32 * 6)()) == 0
    except (OSError, AttributeError):
        return False


def set_limits(limits: dict[str, int]) -> None:
    """Set each ``resource`` limit (by name) as both soft and hard limit, never above the hard limit in force."""
    for name, value in limits.items():
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        try:
            _, hard = resource.getrlimit(limit)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, value))
        except (OSError, ValueError):
            pass


def try_write(path: str, text: str) -> bool:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return True
    except OSError:
        return False


def _unshare(flags: int) -> bool:
    if hasattr(os, "unshare"):  # Python 3.12+
        try:
            os.unshare(flags)
            return True
        except OSError:
            return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).unshare(ctypes.c_int(flags)) == 0
    except (OSError, AttributeError):
        return False


def _readonly_outside(work: str) -> bool:
    """In our own mount namespace: keep ``work`` writable and remount every other mount read-only."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return False
    if libc.mount(work.encode(), work.encode(), None, _MS_BIND | _MS_REC, None) != 0:
        return False
    complete = True
    for mountpoint, options in _mounts():
        if mountpoint == work or mountpoint.startswith(work + "/"):
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | sum(_MOUNT_FLAGS.get(option, 0) for option in options)
        if libc.mount(None, mountpoint.encode(), None, flags, None) != 0:
            complete = False
    return complete


def _mounts() -> list[tuple[str, list[str]]]:
    """(mount point, mount options) for each line of /proc/self/mountinfo."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    return [(_unescape(fields[4]), fields[5].split(",")) for fields in (line.split() for line in lines)]


def _unescape(path: str) -> str:
    """Mountinfo writes space, tab, newline and backslash as three octal digits after a backslash."""
    parts = path.split("\\")
    return parts[0] + "".join(chr(int(part[:3], 8)) + part[3:] for part in parts[1:])
