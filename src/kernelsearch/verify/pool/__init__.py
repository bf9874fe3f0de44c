"""The pool: the caller's side of verification. It keeps warm worker processes (one or more per GPU, gpu_share.py),
each beside an answer keeper process (keeper_process.py), hands each job to a free worker under its phases' time
limits, turns a crash or a hang into a verdict, holds every `correct` against the keeper's record of what it
compared, builds CUDA C++ candidates off the GPU first (build_stage.py), and ends every process it started when
its caller is stopped (live_pools.py)."""
from __future__ import annotations

from .config import PoolConfig
from .devices import DeviceError, resolve_device
from .worker_pool import WorkerPool
from .worker_process import PoolStopped

__all__ = ["PoolConfig", "WorkerPool", "PoolStopped", "DeviceError", "resolve_device"]
