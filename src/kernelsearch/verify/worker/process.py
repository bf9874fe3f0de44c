"""The verifier's worker process: runs untrusted candidates one at a time and answers with JSON verdicts.

Protocol: one JSON request per line on stdin; JSON events, one per line, on the file descriptor named by
KS_RESPONSE_FD: {"event": "ready"}, {"event": "phase", "phase": ...}, {"event": "verdict", ...}. The
candidate's own prints go to stderr (the worker log), never into the protocol."""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path

from .. import errors, tolerance
from ..containment.audit import install, worker_policy
from ..containment.sandbox import network_isolated, os_sandbox
from ..errors import Outcome, is_out_of_memory
from ..harness import calls, chunks, correctness, gpu_kernels, gpu_timing, memory, mismatch
from ..keeper.link import KeeperLink
from ..verdict import Status, Verdict, VerifyRequest
from . import cuda_builds, extra_checks, job, timing_step
from .job import Job
from .runtime_guards import Integrity, LaunchCounter
from .timing_step import CompiledBaselines


def main() -> None:
    protocol = os.fdopen(int(os.environ["KS_RESPONSE_FD"]), "w", buffering=1)
    os.dup2(2, 1)  # anything printed from here on lands in the worker log
    worker = Worker(device=os.environ.get("KS_DEVICE", "cpu"), protocol=protocol)
    # the answer keeper's socket, made an object before the audit hook refuses sockets
    worker.keeper = KeeperLink(socket.socket(fileno=int(os.environ["KS_KEEPER_FD"])), worker.device)
    where = os_sandbox()  # before the audit hook, which refuses the /proc/1 reads this needs
    # The run-time wall (audit.py): installed before the first request, never removed; refusals also go to the
    # pool as {"event": "refused"} lines on the protocol descriptor. On by default on the CPU and the GPU;
    # KS_AUDIT=off turns it off (tests use it to show what the other walls hold alone).
    audit = os.environ.get("KS_AUDIT") or "on"
    if audit == "on":
        # the build stage's modules, read-only
        built = tuple(filter(None, [os.environ.get(cuda_builds.CACHE_VARIABLE)]))
        worker.refusals = install(worker_policy(Path.cwd(), worker.device, report_fd=protocol.fileno(),
                                                more_reads=built))
    worker.send(event="ready", network_isolated=network_isolated(), os_sandbox=where, audit_hook=audit == "on",
                **worker.info)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        job_id, budget = request.pop("id"), request.pop("memory_budget", 0)
        verdict, healthy = worker.handle(job_id, request, budget)
        worker.send(event="verdict", id=job_id, verdict=verdict, healthy=healthy)
        if not healthy:
            break


class Worker:
    def __init__(self, device: str, protocol):
        import torch
        import torch._dynamo  # noqa: F401  (rebinds torch.manual_seed on import: before the snapshot)
        import torch.utils.flop_counter  # noqa: F401
        import triton  # noqa: F401  (imported before any candidate, so its launch path can be counted)

        self.torch, self.protocol, self.device = torch, protocol, device
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference is the standard: true fp32
        torch.backends.cudnn.allow_tf32 = False
        if device == "cuda":
            torch.cuda.init()
            torch.ones(1, device="cuda").sum().item()  # create the context once, while warm
            # load_inline builds for this GPU, here and in the pool's build stage alike (cuda_builds.build_key)
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "{}.{}".format(*torch.cuda.get_device_capability()))
        self.prebuilt = cuda_builds.Prebuilt(os.environ.get(cuda_builds.CACHE_VARIABLE))
        self.counter = LaunchCounter()
        self.counter.install(self.prebuilt)
        self.integrity = Integrity(extra_modules=[calls, chunks, correctness, cuda_builds, errors, extra_checks,
                                                  gpu_kernels, gpu_timing, job, memory, mismatch, timing_step,
                                                  tolerance])
        self.compiled = CompiledBaselines()  # torch.compile'd references, compiled once per problem
        self.info = self.describe()
        self.jobs = 0
        self.refusals = lambda: []  # the audit hook's record, once main() has installed it
        self.keeper = None  # keeper_link.KeeperLink, set by main()

    def describe(self) -> dict:
        import triton
        torch = self.torch
        info = {"device_name": "cpu (Triton interpreter)", "torch": torch.__version__, "triton": triton.__version__,
                "pid": os.getpid()}
        if self.device == "cuda":
            info.update(device_name=torch.cuda.get_device_name(), arch=os.environ["TORCH_CUDA_ARCH_LIST"],
                        memory_bytes=torch.cuda.get_device_properties(0).total_memory)
        return info

    def send(self, **event) -> None:
        self.protocol.write(json.dumps(event, default=str) + "\n")

    def handle(self, job_id: str, request: dict, budget: int = 0) -> tuple[dict, bool]:
        req = VerifyRequest(**request)
        workdir = Path.cwd() / f"job_{job_id}"
        workdir.mkdir(parents=True, exist_ok=True)
        job = Job(self, req, job_id, workdir, budget)
        verdict = Verdict(status=Status.CORRECT, message="", problem=req.problem_name, candidate=req.candidate_name,
                          device=self.info["device_name"], dtype=req.dtype, overrides=req.overrides)
        began = time.perf_counter()
        tainted = False
        try:
            job.run(verdict)
        except Outcome as o:
            verdict.status, verdict.message = o.status, o.message
        except BaseException as e:  # a verifier bug must still come back as a verdict
            traceback.print_exc()
            if is_out_of_memory(e):  # our own allocation, not the candidate's: the plan misjudged the problem
                verdict.status = Status.PROBLEM_ERROR
                verdict.message = (f"the verifier ran out of device memory in the {job.phase} phase "
                                   f"({job.plan.describe() if job.plan else 'no memory plan yet'})")
            else:
                verdict.status, verdict.message = Status.RUNTIME_ERROR, f"verifier error: {type(e).__name__}: {e}"
        verdict.phase = job.phase
        verdict.elapsed_s = round(time.perf_counter() - began, 3)
        verdict.step_s = job.clock.report()
        try:  # after a sticky CUDA error every device call raises: then the process is done for
            violations = self.integrity.violations()
            job.cleanup()
        except Exception:
            traceback.print_exc()
            violations, job.calls.broke_context = [], True
        self.keeper.done(job_id)
        clear_worker_dir()  # the next job starts with none of this one's files (its job_* directory included)
        refused = self.refusals()  # the run-time wall's record: a refusal also ends the worker
        if refused:
            verdict.overrule("refused at run time", "refused at run time: " + "; ".join(refused[:3]))
            tainted = True
        if violations:
            tainted = True
            self.integrity.restore_settings()
            verdict.overrule("harness violation", "; ".join(violations))
        self.jobs += 1
        return verdict.to_json(), self.canary() and not tainted and not job.broke_context

    def canary(self) -> bool:
        """A tiny op on the device after every job: an illegal access leaves a sticky error that shows here."""
        torch = self.torch
        try:
            if self.device == "cuda":
                x = torch.ones(1024, device="cuda")
                torch.cuda.synchronize()
                return float(x.sum()) == 1024.0
            return True
        except Exception:
            return False


# What a worker's directory (its TMPDIR and HOME) keeps from one job to the next: the build caches (a Triton,
# load_inline or torch.compile build takes seconds to minutes). Everything else a candidate wrote there goes.
KEPT_BETWEEN_JOBS = ("triton_cache", "torch_extensions", "torchinductor_", ".nv", ".cache", ".triton")


def clear_worker_dir() -> None:
    import shutil
    for entry in Path.cwd().iterdir():
        if entry.name.startswith(KEPT_BETWEEN_JOBS):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
