"""One verifier worker process and its answer keeper as the pool runs them: started (inside the OS sandbox where
it works), fed jobs under their phases' time limits, restarted when it breaks; crashes and hangs become verdicts."""
from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path

from ..checks.static_checks import check_source
from ..containment.namespaces import shared_shm
from ..containment.sandbox import BUBBLEWRAP, SANDBOX_VARIABLE, containment, limit_process, worker_env, wrap_command
from ..verdict import Status, Verdict, VerifyRequest
from ..worker.cuda_builds import CACHE_VARIABLE
from .child_events import TIMED_OUT, kill_group, next_event, read_events
from .config import WorkerSettings
from .gpu_share import GpuShare
from .keeper_process import KeeperProcess, KeeperStartError, unbacked


class PoolStopped(RuntimeError):
    """The pool was stopped (by a stop signal) before this request got a verdict: no candidate was judged."""


class PoolWorker:
    """One worker process and the thread that feeds it; the process is restarted whenever it breaks."""

    def __init__(self, settings: WorkerSettings, index: int, gpu: int | None, share: GpuShare | None = None):
        self.settings, self.index, self.gpu = settings, index, gpu
        self.proc: subprocess.Popen | None = None
        self.keeper: KeeperProcess | None = None  # the answers' process, started and stopped with the worker
        self.keeper_starting: int | None = None  # its pid while it starts, before self.keeper holds it
        self.shm: Path | None = None  # the /dev/shm the worker and its keeper share on a GPU (namespaces.py)
        self.events: queue.Queue = queue.Queue()
        self.jobs_done = 0
        self.future: Future | None = None  # the request being served, for WorkerPool.cancel
        self.log_path = settings.root / f"worker{index}.log"
        self.share = share  # None: the only worker on its GPU
        self.info: dict = {}  # what this worker said when it started: device, versions, containment
        self.holding: str | None = None  # "alone" or "beside": this worker's turn on a shared GPU
        self.thread = threading.Thread(target=self.loop, name=f"ks-worker-{index}", daemon=True)
        self.thread.start()

    # ---- process lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        pool = self.settings
        if pool.stopping():
            raise PoolStopped("the verifier pool was stopped")
        cfg = pool.config
        workdir = pool.root / f"worker{self.index}"
        workdir.mkdir(parents=True, exist_ok=True)
        env = {**worker_env(pool.device, self.gpu, workdir, cfg.hidden_env), **cfg.extra_env}
        shown: tuple[str, ...] = ()
        if pool.build_cache is not None:  # what the build stage built, read-only (cuda_builds.py)
            env[CACHE_VARIABLE] = str(pool.build_cache)
            shown = (str(pool.build_cache),)
        memory = int(cfg.memory_limit_gb * 2**30) if cfg.memory_limit_gb and pool.device == "cpu" else None
        sandboxed = pool.sandbox_problem is None
        keeper_dir = pool.root / f"keeper{self.index}"
        self.shm = shm = shared_shm() if sandboxed and pool.device == "cuda" else None

        def keeper_sandbox(argv: list[str], keeper_env: dict, info_fd: int) -> list[str]:
            return wrap_command(argv, keeper_dir, pool.device, keeper_env, cfg.hidden_paths, info_fd=info_fd,
                                shm=shm, as_pid_1=True)

        # In a sandbox of its own whose PID namespace the worker joins (namespaces.py); the pool's directory, and so
        # the keeper's, is hidden from the worker
        try:
            self.keeper = KeeperProcess(pool.device, self.gpu, keeper_dir, self.log_path, cfg.hidden_env,
                                        cfg.extra_env, memory, int(cfg.file_limit_gb * 2**30), cfg.start_timeout_s,
                                        wrap=keeper_sandbox if sandboxed else None,
                                        started=lambda pid: setattr(self, "keeper_starting", pid))
        except KeeperStartError as e:  # same environment as the worker: the same failure, said the same way
            self.stop()  # its /dev/shm directory
            raise RuntimeError(f"verifier worker failed to start ({e}, in its answer keeper): "
                               f"{self.log_tail(0) or 'no output'}") from None
        finally:
            self.keeper_starting = None
        keeper_fd = self.keeper.worker_end.fileno()
        read_fd, write_fd = os.pipe()
        env["KS_RESPONSE_FD"] = str(write_fd)
        env["KS_KEEPER_FD"] = str(keeper_fd)
        env["KS_COMPILE_TIMEOUT"] = str(cfg.compile_timeout_s)
        env[SANDBOX_VARIABLE] = BUBBLEWRAP if sandboxed else f"none: {pool.sandbox_problem}"
        argv, pass_fds = [sys.executable, "-m", "kernelsearch.verify.worker"], [write_fd, keeper_fd]
        if sandboxed:
            joined = self.keeper.namespaces
            argv = wrap_command(argv, workdir, pool.device, env, cfg.hidden_paths, join=joined, shm=shm,
                                shown=shown)
            pass_fds += joined.fds()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=log, stderr=log,
            env=env, cwd=workdir, pass_fds=pass_fds, start_new_session=True,
            preexec_fn=limit_process(memory, int(cfg.file_limit_gb * 2**30), network=not sandboxed))
        os.close(write_fd)
        log.close()
        if pool.stopping():  # a stop signal came while Popen ran: kill_workers could not see this process yet
            os.close(read_fd)
            self.stop()
            raise PoolStopped("the verifier pool was stopped")
        self.events = queue.Queue()
        threading.Thread(target=read_events, args=(os.fdopen(read_fd), self.events), daemon=True).start()
        self.jobs_done = 0
        ready = self.next_event(time.monotonic() + cfg.start_timeout_s)
        if not isinstance(ready, dict) or ready.get("event") != "ready":
            why = (f"not ready after {cfg.start_timeout_s:g}s" if ready is TIMED_OUT else "it exited" if ready is None
                   else f"it answered {ready!r}")
            tail = self.log_tail(0)
            self.stop()
            raise RuntimeError(f"verifier worker failed to start ({why}): {tail or 'no output'}")
        info = {k: v for k, v in ready.items() if k != "event"}
        info["pid"] = self.proc.pid  # as the machine sees it: inside bubblewrap's PID namespace the worker is pid 2
        info.setdefault("os_sandbox", env[SANDBOX_VARIABLE])  # a worker that does not say: what it was started in
        info["containment"] = containment(info["os_sandbox"], info.get("network_isolated"))
        if not info.get("audit_hook"):
            info["containment"] += "; no run-time audit hook (KS_AUDIT)"
        self.info = info
        pool.started(info)

    def next_event(self, deadline: float) -> dict | None | object:
        return next_event(self.events, deadline)

    def stop(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper = None
        if self.shm is not None:
            shutil.rmtree(self.shm, ignore_errors=True)
            self.shm = None
        if self.proc is None:
            return
        # The whole group, even when the worker itself has already died: nvcc, ninja, compile workers and whatever
        # the candidate started would otherwise live on. Before wait(), while the group id cannot be reused.
        kill_group(self.proc.pid)
        self.proc.wait()
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc = None

    def kill(self) -> None:
        """From a signal handler: no wait, no state change (the worker's thread reaps the process)."""
        proc, keeper, starting = self.proc, self.keeper, self.keeper_starting
        if proc is not None:
            kill_group(proc.pid)
        if keeper is not None:
            keeper.kill()
        if starting is not None:  # a keeper still starting, which self.keeper does not hold yet
            kill_group(starting)

    def log_tail(self, offset: int, limit: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return text[-limit:].strip()

    # ---- serving jobs --------------------------------------------------------------------------------------
    def loop(self) -> None:
        try:  # start warm, while the caller is still preparing its first request
            self.start()
        except Exception:
            self.proc = None  # run() tries again and reports the failure as a verdict
        while True:
            item = self.settings.jobs.get()
            if item is None:
                return
            request, future = item
            if not future.set_running_or_notify_cancel():
                continue
            self.future = future
            try:
                verdict = self.run(request)
            except Exception as e:  # never leave a caller waiting (a worker that cannot start ends up here)
                verdict = Verdict(status=Status.RUNTIME_ERROR, message=f"verifier error: {e}",
                                  problem=request.problem_name, candidate=request.candidate_name)
            finally:
                self.future = None
            if self.settings.stopping():  # the worker was killed under this job: that says nothing about the candidate
                future.set_exception(PoolStopped("the verifier pool was stopped before this candidate's verdict"))
            else:
                future.set_result(verdict)

    def run(self, request: VerifyRequest) -> Verdict:
        """The request's verdict from this worker. Where it shares its GPU with other workers the job first waits
        for its turn (gpu_share.py): beside the others within a share of the memory, or alone."""
        if self.share is None:
            return self.serve(request, budget=0)
        problem = hashlib.sha256(f"{request.dtype}:{request.problem_source}".encode()).hexdigest()
        budget = self.share.budget_for(problem)
        self.holding = "beside" if budget else "alone"
        if not self.share.enter(self.holding == "alone", self.settings.config.run_timeout_s):
            self.holding = None
            return self.failed(request, Status.TIMEOUT, "static", "waited past its limit for a turn on the GPU",
                               time.monotonic(), "")
        try:
            verdict = self.serve(request, budget)
        finally:
            if self.holding:
                self.share.leave(self.holding == "alone")
            self.holding = None
        self.share.learn(problem, verdict.footprint)
        return verdict

    def serve(self, request: VerifyRequest, budget: int) -> Verdict:
        cfg = self.settings.config
        if (self.proc is None or self.proc.poll() is not None or self.jobs_done >= cfg.recycle_after
                or self.keeper is None or not self.keeper.alive()
                or (request.fresh_worker and self.jobs_done > 0)):
            self.stop()
            self.start()
        job_id = uuid.uuid4().hex[:12]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        began = time.monotonic()
        job_line = (json.dumps({"id": job_id, "memory_budget": budget, **request.to_json()}) + "\n").encode()
        self.keeper.begin(job_line)
        self.proc.stdin.write(job_line)
        self.proc.stdin.flush()
        phase, limit = "static", cfg.compile_timeout_s
        deadline = began + limit
        while True:
            event = self.next_event(deadline)
            if event is TIMED_OUT:
                self.stop()
                return self.failed(request, Status.TIMEOUT, phase, f"{phase} ran past its {limit:.0f}s limit", began,
                                   self.log_tail(offset))
            if event is None:
                code = self.proc.wait() if self.proc else None
                if code is not None and code > 128 and self.settings.sandbox_problem is None:
                    code = 128 - code  # bwrap passes on a signal death as 128 + the signal, as a shell does
                self.stop()
                return self.failed(request, Status.RUNTIME_ERROR, phase,
                                   f"{death_message(code)} (in the {phase} phase)", began, self.log_tail(offset))
            if event.get("event") == "phase":
                phase = event["phase"]
                # The phase's configured limit; the worker may ask for less (a call's limit follows the
                # reference's and the first call's time), never for more.
                limit = cfg.compile_timeout_s if phase in ("compile", "first_call") else cfg.run_timeout_s
                if event.get("limit_s"):
                    limit = min(limit, float(event["limit_s"]))
                deadline = time.monotonic() + limit
            elif event.get("event") == "alone" and self.holding == "beside":
                deadline = self.take_gpu_alone(deadline, limit)
            elif event.get("event") == "verdict" and event.get("id") == job_id:
                return self.judged(request, job_id, event, offset)

    def take_gpu_alone(self, deadline: float, limit: float) -> float:
        """The worker's timing is about to start: it waits until no other job runs on the GPU (within the phase's
        limit, which starts again once it has the GPU), and is told on its stdin: "alone", or "beside" when the wait
        ran out (it times beside other jobs then, and its verdict says so). Returns the phase's new deadline."""
        self.share.leave(False)
        self.holding = "alone" if self.share.enter(True, max(0.0, deadline - time.monotonic())) else None
        self.proc.stdin.write(json.dumps({"gpu": self.holding or "beside"}).encode() + b"\n")
        self.proc.stdin.flush()
        return time.monotonic() + limit if self.holding else deadline

    def judged(self, request: VerifyRequest, job_id: str, event: dict, offset: int) -> Verdict:
        """The worker's verdict held against the keeper's record (a `correct` the keeper did not see is rejected)."""
        self.jobs_done += 1
        verdict = Verdict.from_json(event["verdict"])
        verdict.containment = self.info.get("containment", "")
        record = self.keeper.record(job_id)
        verdict.reference_calls = record.reference_calls if record else 0
        forged = unbacked(verdict, request, record)
        if forged:  # the worker's process said `correct`; the keeper, which holds the answers, did not
            verdict.overrule("not backed by the answer keeper", f"verdict not backed by the comparisons: {forged}")
            event["healthy"] = False
        if verdict.status in (Status.RUNTIME_ERROR, Status.COMPILE_ERROR):
            verdict.log_tail = self.log_tail(offset, 1500)
        built = self.settings.build_seconds(request.candidate_source)
        if built is not None:
            verdict.step_s["build"] = built
        if not event.get("healthy", True):
            self.stop()  # broken CUDA context or a tainted interpreter: the next job gets a fresh one
        return verdict

    def failed(self, request, status, phase, message, began, tail) -> Verdict:
        language = check_source(request.candidate_source).language
        return Verdict(status=status, message=message, problem=request.problem_name, candidate=request.candidate_name,
                       language=language,
                       device=self.info.get("device_name", self.settings.device), dtype=request.dtype, phase=phase,
                       elapsed_s=round(time.monotonic() - began, 3), log_tail=tail,
                       containment=self.info.get("containment", ""))


def death_message(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = {"SIGSEGV": "an out-of-bounds memory access (an unmasked load or store?)",
                "SIGKILL": "killed, most likely for memory", "SIGABRT": "an abort in native code",
                "SIGBUS": "a bad memory access", "SIGFPE": "an arithmetic fault"}.get(name, "a fatal signal")
        return f"the worker process died with {name}: {hint}"
    return f"the worker process exited with code {code} while running the candidate"
