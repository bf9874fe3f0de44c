"""One verifier actor per GPU (per CPU slot on a cluster without GPUs): a local WorkerPool of one warm worker, so
crash isolation, respawn, limits, the OS sandbox and the JSON requests are the local pool's, unchanged."""
from __future__ import annotations

import os
import socket
from concurrent.futures import Future
from dataclasses import replace

import ray

from .. import __version__
from ..verify.pool import PoolConfig, WorkerPool
from ..verify.verdict import VerifyRequest


class VerifierActor:
    def __init__(self, config: PoolConfig, label: str):
        self.label = label
        extra_env = dict(config.extra_env)
        if config.device == "cuda":
            # Ray shows this actor only its own GPU (CUDA_VISIBLE_DEVICES=<its id>, say 3); the local pool sets its
            # worker's CUDA_VISIBLE_DEVICES to the GPU number it was given, 0, which would be the machine's first
            # GPU. extra_env is applied after, so the worker keeps Ray's choice.
            extra_env["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        # one worker: the driver sends an actor one job at a time (two on a GPU would be two actors of half a GPU)
        local = replace(config, gpus=[0] if config.device == "cuda" else None, cpu_workers=1, workers_per_gpu=1,
                        workdir=None, extra_env=extra_env)
        self.pool = WorkerPool(local)
        self.running: Future | None = None

    def where(self) -> dict:
        return {"actor": self.label, "node": ray.util.get_node_ip_address(), "host": socket.gethostname(),
                "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                "gpu": os.environ.get("CUDA_VISIBLE_DEVICES") if self.pool.device == "cuda" else None,
                "kernelsearch": __version__}

    def verify(self, request: dict) -> dict:
        """One job at a time: the driver sends an actor its next job only after this one answered."""
        future = self.pool.submit(VerifyRequest(**request))
        self.running = future
        try:
            verdict = future.result()
        finally:
            self.running = None
        return {"verdict": verdict.to_json(), "info": dict(self.pool.info)}

    def cancel(self) -> None:
        """Kill the job in flight (its worker starts afresh), for callers with deadlines of their own (MCP)."""
        running = self.running
        if running is not None:
            self.pool.cancel(running)

    def close(self) -> None:
        self.pool.kill_workers()
        self.pool.close()


# Two calls at once: verify, and cancel or close beside it. Never restarted by Ray: the driver (ray_pool.RayPool)
# retries a lost actor's job and starts a new actor wherever a GPU is free, where a restart could wait for a node
# that is gone.
RemoteVerifier = ray.remote(max_concurrency=2, max_restarts=0)(VerifierActor)
