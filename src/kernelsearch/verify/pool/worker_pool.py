"""Warm worker processes, one or more per GPU: submit a candidate, get a verdict (each worker: worker_process.py;
several on one GPU: gpu_share.py; CUDA C++ built before it reaches one: build_stage.py)."""
from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

from ..containment.sandbox import bubblewrap_problem
from ..verdict import Verdict, VerifyRequest
from . import live_pools
from .build_stage import BuildStage
from .config import PoolConfig, WorkerSettings
from .devices import resolve_device, resolve_gpus
from .gpu_share import GpuShare
from .worker_process import PoolStopped, PoolWorker

# CUDA C++ builds at once: each runs nvcc and the host compiler side by side (build_stage.JOBS_PER_BUILD)
MAX_BUILD_SLOTS = 8


class WorkerPool:
    """`submit(request) -> Future[Verdict]`. Requests queue up and go to whichever worker is free."""

    def __init__(self, config: PoolConfig | None = None):
        self.config = config or PoolConfig()
        self.device = resolve_device(self.config.device)
        gpus = resolve_gpus(self.config.gpus) if self.device == "cuda" else [None] * max(1, self.config.cpu_workers)
        self.root = Path(self.config.workdir or tempfile.mkdtemp(prefix="kernelsearch-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: queue.Queue = queue.Queue()
        self.info: dict = {}  # what the last worker to start reported: device, versions, pid, network, os_sandbox
        self.started = threading.Event()  # a worker has started (and said self.info)
        per_gpu = max(1, self.config.workers_per_gpu) if self.device == "cuda" else 1
        # several workers on one GPU take turns through its GpuShare; one alone needs none
        self.shares = {gpu: GpuShare(per_gpu) for gpu in gpus} if per_gpu > 1 else {}
        # None: workers start inside bubblewrap; else why they cannot (said in every verdict's `containment`)
        self.sandbox_problem = bubblewrap_problem() if self.config.os_sandbox else "turned off by the caller"
        slots = self.config.build_slots
        slots = min(MAX_BUILD_SLOTS, max(1, (os.cpu_count() or 2) // 2)) if slots is None else slots
        self.builds = BuildStage(self, slots) if self.device == "cuda" and slots > 0 else None
        self.stopping = False  # set by a stop signal: no worker starts again, queued requests fail with PoolStopped
        self.closed = False
        self.workers: list[PoolWorker] = []
        live_pools.register(self)  # before the first worker starts, so that no signal can come between
        settings = WorkerSettings(
            self.config, self.root, self.device, self.sandbox_problem, self.builds.cache if self.builds else None,
            self.jobs, stopping=lambda: self.stopping, started=self._started,
            build_seconds=lambda source: self.builds.seconds.get(source) if self.builds else None)
        for i, gpu in enumerate(gpu for gpu in gpus for _ in range(per_gpu)):
            self.workers.append(PoolWorker(settings, i, gpu, self.shares.get(gpu)))

    def _started(self, info: dict) -> None:
        self.info = info
        for share in self.shares.values():
            share.device_bytes = int(info.get("memory_bytes") or 0)
        self.started.set()

    def submit(self, request: VerifyRequest) -> Future:
        future: Future = Future()
        if self.builds is not None and BuildStage.wanted(request):
            self.builds.submit(request, future, lambda: self.queue(request, future))
        else:
            self.queue(request, future)
        return future

    def queue(self, request: VerifyRequest, future: Future) -> None:
        """For the next free worker."""
        if self.stopping or self.closed:  # no worker thread would ever take it
            future.set_exception(PoolStopped(f"the verifier pool was {'stopped' if self.stopping else 'closed'}"))
        else:
            self.jobs.put((request, future))

    def arch(self, timeout: float) -> str:
        """The GPU's architecture as a worker reported it ("9.0"), waiting for the first to start; "" if none did."""
        self.started.wait(timeout)
        return self.info.get("arch", "")

    def verify(self, request: VerifyRequest) -> Verdict:
        return self.submit(request).result()

    def cancel(self, future: Future) -> None:
        """Give up on a submitted request: dropped while it waits in the queue, else its worker's process group is
        killed (the worker starts afresh for the next request). For callers with deadlines of their own (MCP)."""
        if future.cancel():
            return
        for worker in self.workers:
            if worker.future is future:
                worker.kill()

    def close(self) -> None:
        self.closed = True
        try:
            if self.builds is not None:  # builds in flight end; their requests are refused (queue)
                self.builds.close()
            for _ in self.workers:
                self.jobs.put(None)
            for worker in self.workers:
                worker.thread.join(timeout=30)
                worker.stop()
        finally:
            live_pools.unregister(self)
        if not self.config.workdir:
            shutil.rmtree(self.root, ignore_errors=True)

    def kill_workers(self) -> None:
        """Called from a signal handler (live_pools): kill every worker's process group now and start no more.
        Only sets a flag and sends signals; each worker's thread reaps its own process."""
        self.stopping = True
        if self.builds is not None:
            self.builds.kill()
        for worker in self.workers:
            worker.kill()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
