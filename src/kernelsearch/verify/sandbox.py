"""Containment for worker processes: scrubbed environment, resource limits, no network where Linux allows."""
from __future__ import annotations

import ctypes
import os
import re
import resource
import sys
from pathlib import Path

# Variables that look like credentials never reach a worker (a candidate could read os.environ via C++).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


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
    reservations are not in play), then drops the network by entering a new network namespace."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        _drop_network()

    return apply


def _drop_network() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
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
