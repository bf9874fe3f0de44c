"""One PID namespace for a worker and its answer keeper: the keeper's bubblewrap makes it, the worker's joins it.

Why: a CUDA IPC handle opens only in a process of the exporter's PID namespace (the driver names the exporter by
its pid; across namespaces the open fails with "invalid device context"), and the keeper reads the candidate's
GPU outputs through such handles. Each still has its own mount, network, IPC and UTS namespaces: the worker never
sees the keeper's directory. The keeper makes itself undumpable, so that sharing a PID namespace gives the
candidate no way into it: ptrace, /proc/PID/mem, /proc/PID/root and /proc/PID/fd of an undumpable process are
refused to a process without CAP_SYS_PTRACE, and the worker has no capabilities."""
from __future__ import annotations

import json
import os
import select
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_DUMPABLE = 4


@dataclass
class Namespaces:
    """Open descriptors of a running sandbox's PID namespace and, where bwrap made one, its user namespace."""
    pid_fd: int
    user_fd: int | None  # None where the sandbox runs in ours (bwrap started as root makes no user namespace)

    @classmethod
    def of(cls, pid: int) -> Namespaces:
        """Those of process `pid` (bwrap's child, the first process of the sandbox)."""
        own_user = os.stat("/proc/self/ns/user").st_ino
        pid_fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        user_fd = None
        if os.stat(f"/proc/{pid}/ns/user").st_ino != own_user:  # joining our own user namespace is EINVAL
            user_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        return cls(pid_fd, user_fd)

    def fds(self) -> tuple[int, ...]:
        """To pass to the joining bwrap (pass_fds)."""
        return tuple(fd for fd in (self.pid_fd, self.user_fd) if fd is not None)

    def options(self) -> list[str]:
        """bwrap's options to join them; the user namespace first, which gives bwrap the right to join the other."""
        user = ["--userns", str(self.user_fd)] if self.user_fd is not None else []
        return [*user, "--pidns", str(self.pid_fd)]

    def close(self) -> None:
        for fd in self.fds():
            os.close(fd)
        self.pid_fd, self.user_fd = -1, None


def read_child_pid(fd: int, deadline: float) -> int:
    """The pid of bwrap's child, from what bwrap writes on its --info-fd ({"child-pid": N, ...}); OSError when it
    does not come by `deadline` (time.monotonic()) or bwrap exits first."""
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue  # not all of it yet
    raise OSError(f"bwrap did not say its child's pid ({data.decode(errors='replace').strip() or 'nothing'})")


def shared_shm() -> Path | None:
    """A fresh directory on the machine's /dev/shm for a GPU worker and its keeper to see as theirs: CUDA's IPC
    works through it (on the H100, CUDA 13: a handle was refused, "invalid argument", with a directory of a disk
    file system bound there; it did not open with a /dev/shm of each sandbox's own). None where there is none."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        return None
    return Path(tempfile.mkdtemp(prefix="kernelsearch-", dir="/dev/shm"))


def undumpable() -> None:
    """This process: no ptrace, no /proc/PID/mem, root or fd for others of its user without CAP_SYS_PTRACE."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no /proc to read it through either
        pass
