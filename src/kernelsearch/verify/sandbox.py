"""Containment for worker processes: scrubbed environment, resource limits, no network where Linux allows."""
from __future__ import annotations

import ctypes
import os
import re
import resource
import signal
import sys
from pathlib import Path

# Variables that look like credentials never reach a worker (a candidate could read os.environ via C++).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_PDEATHSIG = 1


def worker_env(device: str, gpu: int | None, workdir: Path, hidden: tuple[str, ...] = ()) -> dict[str, str]:
    """The worker's environment: no variable that looks secret, nor any named in `hidden` (an API key variable
    given by name, whatever it is called)."""
    env = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k) and k not in hidden}
    package_root = str(Path(__file__).resolve().parents[2])  # .../src, so the worker imports this very code
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["KS_DEVICE"] = device
    env["TMPDIR"] = str(workdir)
    env["TORCH_EXTENSIONS_DIR"] = str(workdir / "torch_extensions")
    env["TRITON_CACHE_DIR"] = str(workdir / "triton_cache")
    env["HOME"] = str(workdir)
    if device == "cuda":
        env.pop("TRITON_INTERPRET", None)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    else:
        env["TRITON_INTERPRET"] = "1"
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def limit_process(memory_bytes: int | None, file_bytes: int):
    """A preexec_fn for the worker: caps file size (and address space on the CPU, where CUDA's huge virtual
    reservations are not in play), drops the network by entering a new network namespace, and makes the worker
    die with the process that starts it. Call it in that process (the parent): it notes the parent's pid and
    loads libc there, since a forked child of a threaded program should not take the loader's locks."""
    parent = os.getpid()
    libc = _libc()

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        _drop_network(libc)
        _die_with_parent(libc, parent)  # last: nothing after it changes credentials, which would clear it

    return apply


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _die_with_parent(libc, parent: int) -> None:
    """SIGKILL this process when its parent dies, however it dies (SIGKILL included, which no handler sees).

    Linux sends it when the parent *thread* that forked us exits: the pool starts each worker from that worker's
    own long-lived thread, which ends only when the pool closes. The flag survives exec, not fork: the worker's own
    children (nvcc, ninja, anything the candidate starts) do not get it. If our parent is SIGKILLed they are
    reparented to init (or the nearest subreaper) and run until they end on their own; they keep the worker's
    process group, so `kill -KILL -- -<worker pid>` still finds them. When the parent ends any other way, the pool
    kills the whole group (live_pools), so they go too."""
    if libc is None:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died between fork and prctl: no signal will ever come
        os._exit(1)


def _drop_network(libc) -> None:
    if libc is None:
        return
    if os.geteuid() == 0:
        libc.unshare(CLONE_NEWNET)
        return
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return
    try:  # map our own ids so that files keep their owner inside the namespace
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        pass


def network_isolated() -> bool:
    """True inside a network namespace with nothing but loopback (called in the worker, reported once)."""
    import socket
    try:
        return {name for _, name in socket.if_nameindex()} <= {"lo"}
    except OSError:
        return False
