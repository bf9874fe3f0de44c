"""Running a probe (probe.py) in the verifier's containment, as the pool starts its workers (verify.pool): a scrubbed
environment, resource limits, bubblewrap where it works here (else no network), a session of its own, death with
its parent. It ends on every path: its answer, the caller's deadline or cancellation (the whole process group is
killed), a stop signal to the server (verify.live_pools)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import anyio

from ..verify.pool import live_pools
from ..verify.pool.child_events import kill_group
from ..verify.pool import WorkerPool
from ..verify.pool.worker_process import death_message
from ..verify.containment.sandbox import limit_process, worker_env, wrap_command

LOG_TAIL = 1500  # characters of the probe's stderr kept for an error message


class ProbeFailed(RuntimeError):
    """The probe could not answer (the problem failed, the process died); the message says why."""


class Probes:
    """The probe processes of one server. Registered with verify.live_pools like a worker pool, which calls
    `kill_workers` on SIGINT/SIGTERM/SIGHUP."""

    def __init__(self, pool: WorkerPool, root: Path):
        self.pool, self.config, self.device, self.root = pool, pool.config, pool.device, root
        self.gpu = pool.config.gpus[0] if pool.config.gpus else None  # the first of the pool's GPUs
        self.running: set[subprocess.Popen] = set()
        live_pools.register(self)

    async def run(self, request: dict) -> dict:
        """The probe's answer to `request`. Start it from the event loop's thread (the server's main thread, which
        lives as long as the server: the probe's death-with-parent signal follows the thread that started it)."""
        workdir = self.root / f"probe-{uuid.uuid4().hex[:8]}"
        workdir.mkdir(parents=True)
        proc = self.start(workdir)
        answered = False
        try:
            out, err = await anyio.to_thread.run_sync(proc.communicate, json.dumps(request).encode(),
                                                      abandon_on_cancel=True)
            answered = True
        finally:
            if not answered:  # a deadline or a cancelled call: the probe and anything it started go
                kill_group(proc.pid)
            self.running.discard(proc)
            shutil.rmtree(workdir, ignore_errors=True)
        code = proc.returncode
        if code is not None and code > 128 and self.pool.sandbox_problem is None:
            code = 128 - code  # bwrap passes on a signal death as 128 + the signal
        try:
            answer = json.loads(out.decode())
        except ValueError:
            tail = err.decode(errors="replace").strip()[-LOG_TAIL:]
            raise ProbeFailed(f"{death_message(code) if code else 'the probe process gave no answer'}"
                              + (f"; its log ends: {tail}" if tail else "")) from None
        if not answer.pop("ok"):
            raise ProbeFailed(answer["error"])
        return answer

    def start(self, workdir: Path) -> subprocess.Popen:
        cfg = self.config
        env = worker_env(self.device, self.gpu, workdir, cfg.hidden_env)
        argv = [sys.executable, "-m", "kernelsearch.agents.probe"]
        sandboxed = self.pool.sandbox_problem is None  # the pool's own finding, once per server
        if sandboxed:
            argv = wrap_command(argv, workdir, self.device, env, cfg.hidden_paths)
        memory = int(cfg.memory_limit_gb * 2**30) if cfg.memory_limit_gb and self.device == "cpu" else None
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=workdir,
            start_new_session=True,
            preexec_fn=limit_process(memory, int(cfg.file_limit_gb * 2**30), network=not sandboxed))
        self.running.add(proc)
        return proc

    def kill_workers(self) -> None:
        """From a signal handler (live_pools) or at shutdown: only sends signals."""
        for proc in list(self.running):
            kill_group(proc.pid)

    def close(self) -> None:
        self.kill_workers()
        live_pools.unregister(self)

