"""What a worker pool is asked to be (PoolConfig), and what each of its worker processes is handed from it
(WorkerSettings): a frozen settings object with the job queue, so that a worker process reads nothing else of its
pool."""
from __future__ import annotations

import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class PoolConfig:
    device: str = "auto"  # auto | cuda | cpu
    gpus: list[int] | None = None  # cuda: which GPUs; default all visible
    workers_per_gpu: int = 1  # cuda: workers sharing each GPU (gpu_share.py); solve and bench start 2
    cpu_workers: int = 1
    build_slots: int | None = None  # cuda: CUDA C++ builds at once off the GPU (None: half the cores, at most 8)
    compile_timeout_s: float = 300.0  # import + build + first call (load_inline cold builds take ~90 s)
    run_timeout_s: float = 300.0  # trials, extra checks and timing
    start_timeout_s: float = 180.0  # spawn, import torch, create the CUDA context
    recycle_after: int = 50  # jobs per worker process before a fresh one
    memory_limit_gb: float | None = 16.0  # address-space cap for CPU workers (not applied on GPU)
    file_limit_gb: float = 4.0
    workdir: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    hidden_env: tuple[str, ...] = ()  # variables candidates must never see (the model's API key variable)
    os_sandbox: bool = True  # run workers inside bubblewrap where it works here (sandbox.wrap_command)
    hidden_paths: tuple[str, ...] = ()  # hidden from sandboxed workers too, like the caller's home and working
    # directory (a run directory given with --out somewhere else)



@dataclass(frozen=True)
class WorkerSettings:
    """A pool's settings as its workers see them, fixed when the pool starts, and the few live things they share
    with it: the job queue, whether a stop signal came, where to say a worker started."""
    config: PoolConfig
    root: Path  # the pool's directory: each worker's and keeper's own directory and log are in it
    device: str  # cuda or cpu
    sandbox_problem: str | None  # None: workers start inside bubblewrap; else why they cannot
    build_cache: Path | None  # the build stage's modules, shown read-only to the workers (cuda_builds.py)
    jobs: queue.Queue  # (request, future), or None to stop
    stopping: Callable[[], bool]  # a stop signal came: no worker starts again
    started: Callable[[dict], None]  # a worker started: what it said (device, versions, containment)
    build_seconds: Callable[[str], float | None]  # the build stage's time for a candidate's source, if it built one
