"""Connecting to Ray for `--ray local|auto|ADDRESS`, and what the cluster offers. Ray is an optional extra: it is
imported here, only when asked for, and every failure to reach a cluster is one line (ClusterError)."""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass

INSTALL_HINT = "pip install 'kernelsearch[ray]'"
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20  # requests and verdicts are JSON of kilobytes; Ray's default takes 30 % of RAM
CONNECT_CHECK_S = 5.0  # a cluster's GCS answers a TCP connect at once; ray.init itself retries for a minute


class ClusterError(ValueError):
    """No Ray, or no cluster at the address given, or none with the device asked for (the CLI exits 2)."""


@dataclass
class Cluster:
    address: str  # as given: local, auto or host:port / ray://host:port
    started_here: bool  # this process connected (so it also disconnects); False when Ray was initialized already


def connect(address: str, num_cpus: int | None = None) -> Cluster:
    """`local`: start a Ray cluster on this machine (num_cpus: the machine's); `auto`: the cluster RAY_ADDRESS
    names or one running here; anything else: the cluster at that address. A Ray already initialized in this
    process is used as it is."""
    ray = import_ray()
    if ray.is_initialized():
        return Cluster(address, started_here=False)
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    if address == "local":
        options.update(address="local", num_cpus=num_cpus or os.cpu_count(),
                       object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    elif address == "auto":
        options.update(address="auto")
    else:
        _check_reachable(address)
        options.update(address=address)
    # ray.init replaces the SIGTERM handler with one that exits with status 15 at once; verify.live_pools' handler
    # (which stops the workers and exits 143) must keep the signal, so the one there before comes back
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(**options)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError, grpc errors: all mean "no cluster here"
        raise ClusterError(f"--ray {address}: no Ray cluster to use: {one_line(e)}") from None
    finally:
        if main and before is not None:
            signal.signal(signal.SIGTERM, before)
    return Cluster(address, started_here=True)


def disconnect() -> None:
    """Leave the cluster; a cluster started by `local` stops with it (and every actor this process started)."""
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


def cluster_device(requested: str) -> str:
    """auto, cuda or cpu -> cuda or cpu, by what the connected cluster has (not by this machine: the loop may run
    on a laptop and the verifier on the cluster's GPUs)."""
    if requested not in ("auto", "cuda", "cpu"):
        raise ClusterError(f"unknown device {requested!r} (auto, cuda or cpu)")
    if requested == "cpu":
        return "cpu"
    gpus = import_ray().cluster_resources().get("GPU", 0)
    if gpus:
        return "cuda"
    if requested == "auto":
        return "cpu"
    raise ClusterError("--device cuda: the Ray cluster has no GPU; --device cpu runs Triton kernels in the "
                       "interpreter on its CPUs")


def connect_for(address: str, requested: str) -> str:
    """Connect (for the CLI, before the run directory is written) and resolve the device on the cluster."""
    connect(address)
    return cluster_device(requested)


def import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _check_reachable(address: str) -> None:
    """host:port (or ray://host:port) must answer a TCP connect: ray.init would otherwise retry for a minute."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray {address}: not an address (local, auto, HOST:PORT or ray://HOST:PORT)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_CHECK_S).close()
    except OSError as e:
        raise ClusterError(f"--ray {address}: nothing answers at {host}:{port} ({e.strerror or one_line(e)})") \
            from None
