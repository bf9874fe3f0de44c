"""The pool's build stage: CUDA C++ candidates are built by CPU processes (builder.py), several at once, before they
go to a GPU worker, which then only loads what was built (cuda_builds.py). A candidate whose build fails gets its
compile_error here, without a GPU; one whose sources it could not see is built in the worker as before."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from ..checks.static_checks import check_source
from ..containment.sandbox import limit_process, worker_env, wrap_command
from ..verdict import Status, Verdict, VerifyRequest
from ..worker.cuda_builds import MANIFEST
from .child_events import kill_group
from .worker_process import PoolStopped

# nvcc and the host compiler are single-threaded; ninja runs a build's two files (C++, CUDA) side by side.
JOBS_PER_BUILD = 2
LOG_TAIL = 1500
KEY = re.compile(r"[0-9a-f]{24}")  # cuda_builds.build_key's form


class BuildStage:
    """`submit(request, future, then)`: builds the request's CUDA modules, then calls `then()` (which queues it for
    a GPU worker), or settles `future` with the build's compile_error."""

    def __init__(self, pool, slots: int):
        self.pool, self.config = pool, pool.config
        self.cache = pool.root / "builds"  # shown read-only to the workers (cuda_builds.CACHE_VARIABLE)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="ks-build")
        self.running: set[subprocess.Popen] = set()
        self.done: dict[str, dict] = {}  # candidate source -> the builder's answer (built once per pool)
        self.lock = threading.Lock()
        self.seconds: dict[str, float] = {}  # candidate source -> seconds its builds took (for its verdict)
        self.waiting: set[Future] = set()  # the requests not yet built (or failed): settled when the stage closes

    @staticmethod
    def wanted(request: VerifyRequest) -> bool:
        """CUDA C++ that passes the static checks (a rejected candidate goes straight to a worker, which rejects it
        in milliseconds)."""
        report = check_source(request.candidate_source)
        return report.language in ("cuda", "both") and not report.syntax_error and not report.violations

    def submit(self, request: VerifyRequest, future: Future, then: Callable[[], None]) -> None:
        self.waiting.add(future)
        self.executor.submit(self._build, request, future, then)

    def _build(self, request: VerifyRequest, future: Future, then: Callable[[], None]) -> None:
        self.waiting.discard(future)
        try:
            answer = self.built(request)
        except Exception as e:  # the build stage's own failure: the worker builds it, as it did before
            print(f"build stage: {type(e).__name__}: {e}", file=sys.stderr)
            answer = {}
        failed = answer.get("failed")
        if failed and not future.done():
            # A compile_error whatever status the builder's answer names: the candidate's own code ran in the builder
            # and could have written that answer, so it may only ever fail the candidate.
            future.set_result(Verdict(
                status=Status.COMPILE_ERROR, message=str(failed.get("message", "its build failed"))[:4000],
                problem=request.problem_name,
                candidate=request.candidate_name, language=check_source(request.candidate_source).language,
                device=self.pool.info.get("device_name", self.pool.device), dtype=request.dtype, phase="compile",
                elapsed_s=self.seconds.get(request.candidate_source, 0.0), log_tail=answer.get("log", ""),
                step_s={"build": self.seconds.get(request.candidate_source, 0.0)},
                containment=self.pool.info.get("containment", "")))
            return
        then()

    def built(self, request: VerifyRequest) -> dict:
        """The builder's answer for this candidate: made now, or remembered from an earlier request of the pool."""
        with self.lock:
            known = self.done.get(request.candidate_source)
        if known is not None:
            return known
        arch = self.pool.arch(timeout=self.config.start_timeout_s)
        if not arch:
            return {}
        workdir = self.pool.root / f"build-{uuid.uuid4().hex[:8]}"
        workdir.mkdir(parents=True)
        began = time.monotonic()
        try:
            answer = self.run_builder(request, workdir, arch)
            for build in answer.get("builds", []):
                self.keep(workdir / "builds" / build["key"], build)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        with self.lock:
            self.done[request.candidate_source] = answer
            self.seconds[request.candidate_source] = round(time.monotonic() - began, 1)
        return answer

    def run_builder(self, request: VerifyRequest, workdir: Path, arch: str) -> dict:
        cfg = self.config
        env = {**worker_env("cpu", None, workdir, cfg.hidden_env), **cfg.extra_env,
               "TORCH_CUDA_ARCH_LIST": arch, "MAX_JOBS": str(JOBS_PER_BUILD)}
        env.pop("TRITON_INTERPRET", None)
        read_fd, write_fd = os.pipe()
        env["KS_RESPONSE_FD"] = str(write_fd)
        argv = [sys.executable, "-m", "kernelsearch.verify.worker.builder"]
        if self.pool.sandbox_problem is None:
            argv = wrap_command(argv, workdir, "cpu", env, cfg.hidden_paths)
        log_path = workdir / "build.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log, env=env, cwd=workdir,
                                    pass_fds=[write_fd], start_new_session=True,
                                    preexec_fn=limit_process(None, int(cfg.file_limit_gb * 2**30),
                                                             network=self.pool.sandbox_problem is not None))
        os.close(write_fd)
        with self.lock:
            self.running.add(proc)
        answers: list[bytes] = []  # read as it comes: a builder blocked on a full pipe would never exit
        reader = threading.Thread(target=lambda: answers.append(_read_all(read_fd)), daemon=True)
        reader.start()
        try:
            proc.stdin.write(json.dumps({"candidate_source": request.candidate_source,
                                         "problem_source": request.problem_source}).encode() + b"\n")
            proc.stdin.close()
            proc.wait(timeout=cfg.compile_timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            kill_group(proc.pid)  # whatever it started (ninja, nvcc) goes with it
            proc.wait()
            with self.lock:
                self.running.discard(proc)
        reader.join()  # every writer is gone: the read has ended
        try:
            answer = json.loads(b"".join(answers) or b"{}")
        except ValueError:
            return {}
        if answer.get("failed"):
            answer["log"] = log_path.read_text(errors="replace")[-LOG_TAIL:].strip()
        return answer

    def keep(self, built: Path, build: dict) -> None:
        """Move one build into the cache, with the manifest the workers read (written here, not by the builder)."""
        file = str(build.get("file", ""))
        if not file.endswith(".so") or "/" in file or not (built / file).is_file():
            return
        key = str(build.get("key", ""))
        if not KEY.fullmatch(key):  # a path component the builder (candidate code) chose: hex digits only
            return
        target = self.cache / key
        if target.exists():
            return
        shutil.move(str(built), str(target))
        (target / MANIFEST).write_text(json.dumps({"file": file}))

    def kill(self) -> None:
        """From a signal handler (live_pools): no lock, no wait."""
        for proc in list(self.running):
            kill_group(proc.pid)

    def close(self) -> None:
        """Builders in flight end; a request whose build never began is answered, never left waiting."""
        self.kill()
        self.executor.shutdown(wait=True, cancel_futures=True)
        for future in list(self.waiting):
            if not future.done():
                future.set_exception(PoolStopped("the verifier pool was closed before this candidate was built"))


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as stream:
        return stream.read()
