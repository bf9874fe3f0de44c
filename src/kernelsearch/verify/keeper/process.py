"""The answer keeper: a process beside each worker that computes the reference's answers and compares the
candidate's outputs with them, so that no answer ever exists in the process where the candidate runs.

It takes each job's request from the pool (stdin: the line the worker gets, so the worker cannot change the problem,
the seeds or the tolerance), serves the worker over a socket (link.py: JSON and raw tensor bytes), and
reports each comparison to the pool on KS_RESPONSE_FD; the pool holds the worker's verdict against them. The keeper
never runs candidate code. On a GPU a job's answers stay on the device where its memory plan allows
(memory.answers_fit_on_device), and the worker's outputs are read in place through CUDA IPC: a comparison never
crosses host memory; where they do not fit, answers wait in host memory and come back a chunk at a time."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import traceback
from pathlib import Path

import torch

from ..containment.namespaces import undumpable
from ..errors import Outcome, problem_call
from ..harness.calls import Calls
from ..harness.correctness import compare, degenerate_reason
from ..harness.memory import Footprint, Poison, answers_fit_on_device, device_free_bytes, tensor_bytes
from ..harness.modules import DTYPES, build_model, import_source, load_problem
from ..verdict import Status, VerifyRequest
from .link import LinkClosed, open_cuda, recv_message, recv_tensor, send_message
from .references import ReferenceBehaviour, ReferenceCache


def main() -> None:
    undumpable()  # first: it shares its PID namespace with the candidate's worker (namespaces.py)
    # No handler for SIGINT either (Python's raises KeyboardInterrupt): as its namespace's first process, the keeper
    # then gets no signal at all from the worker's processes; the pool, outside that namespace, still kills it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    protocol = os.fdopen(int(os.environ["KS_RESPONSE_FD"]), "w", buffering=1)
    os.dup2(2, 1)  # the problem's prints go to the log, never into the protocol
    keeper = Keeper(os.environ.get("KS_DEVICE", "cpu"), protocol, socket.socket(fileno=int(os.environ["KS_KEEPER_FD"])))
    keeper.send(event="ready")
    for line in sys.stdin:
        if line.strip():
            request = json.loads(line)
            job_id, budget = request.pop("id"), request.pop("memory_budget", 0)
            try:
                keeper.serve(job_id, request, budget)
            except LinkClosed:
                return  # the worker is gone: the pool starts both again


class Keeper:
    def __init__(self, device: str, protocol, sock: socket.socket):
        self.torch, self.device, self.protocol, self.sock = torch, device, protocol, sock
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference is the standard: true fp32
        torch.backends.cudnn.allow_tf32 = False
        if device == "cuda":
            torch.cuda.init()
        self.references = ReferenceCache()  # answers kept for the later candidates of the same problem
        self.ipc_failed = False  # CUDA IPC refused once: said once in the log
        # KS_KEEPER_ANSWERS=host keeps every answer in host memory, as on a device too small for them (benchmarks)
        self.answers_on_host = os.environ.get("KS_KEEPER_ANSWERS") == "host"

    def send(self, **event) -> None:
        self.protocol.write(json.dumps(event, default=str) + "\n")

    def serve(self, job_id: str, request: dict, budget: int = 0) -> None:
        """Answer the worker's messages about this job until it says the job is done."""

        job = KeeperJob(self, VerifyRequest(**request), job_id, budget)
        try:
            while True:
                message = recv_message(self.sock)
                if message.get("op") == "done":
                    send_message(self.sock)
                    return
                try:
                    if message.get("job") != job_id:
                        raise Outcome(Status.REJECTED, "the answer keeper was asked about another job")
                    job.handle(message)
                except Outcome as o:
                    send_message(self.sock, status=o.status, message=o.message)
                except LinkClosed:
                    raise
                except Exception as e:  # a verifier bug: the worker's verdict says so
                    traceback.print_exc()
                    send_message(self.sock, status=Status.RUNTIME_ERROR,
                                 message=f"verifier error in the answer keeper: {type(e).__name__}: {e}")
        finally:
            job.cleanup()
            self.send(event="job_done", id=job_id, reference_calls=job.reference_calls)


class KeeperJob:
    """One job's reference: built on its first request, its answers computed on demand and held in host memory."""

    def __init__(self, keeper: Keeper, req, job_id: str, budget: int = 0):

        self.k, self.req, self.id = keeper, req, job_id
        self.budget = budget  # device bytes this job may plan with when it shares the GPU (gpu_share.py); 0: all
        self.torch = keeper.torch
        self.dtype = getattr(self.torch, DTYPES[req.dtype])
        self.tolerance = req.resolved_tolerance()
        self.workdir = Path.cwd() / f"job_{job_id}"
        self.allowed = req.compared_seeds()  # each asked about once; a failed comparison ends the asking
        self.compared: set[tuple[int, str]] = set()
        self.failed = False
        self.held: dict[tuple[int, str], list] = {}  # answers made ready for a comparison still to come
        self.on_device: bool | None = None  # where this job's answers live; decided once the footprint is known
        self.models: dict[str, tuple] = {}  # "problem" | "variant" -> (module, reference model, Calls)
        self.degenerate: str | None = None
        self.reference_s, self.reference_calls = 0.0, 0

    def handle(self, message: dict) -> None:

        op = message.get("op")
        if op == "prepare":
            return send_message(self.k.sock, **self.prepare())
        seed, kind = message.get("seed"), message.get("kind")
        if (seed, kind) not in self.allowed or (seed, kind) in self.compared or self.failed:
            raise Outcome(Status.REJECTED, f"the answer keeper refused to compare seed {seed} ({kind}) again or out of "
                                      "turn (only the job's own trials, each once)")
        if op == "ready":
            self.held[(seed, kind)] = self.answers(seed, kind)
            return send_message(self.k.sock)
        if op == "compare":
            return self.compare(seed, kind, message.get("outputs") or [])
        raise Outcome(Status.REJECTED, f"the answer keeper does not know the request {op!r}")

    # ---- the reference ------------------------------------------------------------------------------------
    def prepare(self) -> dict:
        """The first trials' answers (the first call measures the footprint), and what the worker needs to know
        of them: footprint, what the reference does to its inputs, its time, whether it is degenerate, and the
        device memory the answers held now take (the worker's memory plan counts them)."""

        refs = []
        for t in range(min(2, self.req.trials)):
            self.held[(self.req.seed + t, "trial")] = self.answers(self.req.seed + t, "trial")
            refs.append(self.held[(self.req.seed + t, "trial")])
        on = "cuda" if self.k.device == "cuda" else "cpu"  # host-held answers are brought over a chunk at a time
        self.degenerate = degenerate_reason(refs, self.tolerance, device=on) if refs else None
        known = self.k.references.behaviour[self.problem_key]
        footprint = vars(known.footprint) if known.footprint else None
        on_device = [a for answers in self.held.values() for a in answers if a.device.type == "cuda"]
        return {"footprint": footprint, "aliases": known.aliases, "mutates": known.mutates,
                "broadcasts": known.broadcasts, "reference_s": max(self.reference_s, known.seconds),
                "degenerate": self.degenerate, "device_bytes": tensor_bytes(on_device)}

    @property
    def problem_key(self) -> tuple:
        return self.model("problem")[0].__ks_key__, self.req.dtype, self.k.device

    def model(self, which: str) -> tuple:
        """The problem (or its second shape) loaded and its reference built from the request's seed."""
        if which not in self.models:

            source = self.req.problem_source if which == "problem" else self.req.variant_source
            self.workdir.mkdir(parents=True, exist_ok=True)
            module = load_problem(lambda: import_source(source, f"ks_keeper_{which}_{self.id}",
                                                        self.workdir / f"{which}.py"))
            init = problem_call(module.get_init_inputs, "get_init_inputs()")
            reference = build_model(self.torch, module.Model, init, self.req.seed, self.k.device, self.dtype)
            calls = Calls(self.torch, self.k.device, self.dtype, Poison(self.k.device), self.workdir)
            self.models[which] = (module, reference, calls)
        return self.models[which]

    def answers(self, seed: int, kind: str) -> list:
        """The reference's outputs for (seed, kind): held for this job, cached (host copies), or computed now and
        kept where this job keeps its answers (on the device where they fit)."""

        if (seed, kind) in self.held:
            return self.held.pop((seed, kind))
        which = "variant" if kind == "variant" else "problem"
        module, reference, calls = self.model(which)
        key = (module.__ks_key__, self.req.dtype, self.k.device, seed, kind)
        problem_key = key[:3]
        known = self.k.references.behaviour.get(problem_key)
        cached = self.k.references.get(key)
        if cached is not None and known is not None:
            return cached
        pristine = calls.inputs(module, seed)
        if known is None:
            answers, seconds, footprint = self.measure(calls, reference, pristine)
        else:
            answers, seconds = calls.reference(reference, pristine)
            footprint = known.footprint
        del pristine
        self.reference_s = max(self.reference_s, seconds)
        self.reference_calls += 1
        seen = ReferenceBehaviour(footprint, *calls.reference_behaviour(), seconds=max(seconds, known.seconds if known
                                                                                      else 0.0))
        self.k.references.behaviour[problem_key] = seen
        on_gpu = self.k.device == "cuda"
        if self.k.references.worth_keeping(tensor_bytes(answers), seconds, on_gpu=on_gpu):
            self.k.references.put(key, answers)
        if on_gpu:
            if not self.keeps_on_device(footprint, answers):
                answers = [a.detach().to("cpu", copy=True) for a in answers]
            # the worker's side needs the room: the inputs, their copy and the intermediates (45_Average_Pooling_2D:
            # 32 GiB of inputs kept in this allocator left the worker a plan of 32 of 80 GiB)
            self.torch.cuda.empty_cache()
        return answers

    def keeps_on_device(self, footprint, answers: list) -> bool:
        """Whether this job's answers stay on the device (decided once, at its first answers, from the footprint
        and the device memory free with those answers counted as free)."""
        if self.on_device is None:

            held = [a for kept in self.held.values() for a in kept if a.device.type == "cuda"]
            free = device_free_bytes() + tensor_bytes(answers) + tensor_bytes(held)
            budget = self.budget or free
            self.on_device = (footprint is not None and not self.k.answers_on_host
                              and answers_fit_on_device(footprint, min(free, budget)))
        return self.on_device

    def measure(self, calls, reference, pristine):
        """The reference's first call, measuring its footprint for the worker's memory plan (intermediates only
        on a GPU, where the allocator counts them)."""

        torch, on_gpu = self.torch, self.k.device == "cuda"
        params = tensor_bytes([*reference.parameters(), *reference.buffers()])
        held = torch.cuda.memory_allocated() if on_gpu else 0
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        try:
            answers, seconds = calls.reference(reference, pristine)
        except Outcome as o:
            if "out of memory" not in o.message.lower():
                raise
            footprint = Footprint(tensor_bytes(pristine), 0, params, 0)
            free = torch.cuda.mem_get_info()[0] if on_gpu else 0
            raise Outcome(Status.PROBLEM_ERROR, (
                f"the reference alone ran out of device memory ({footprint.describe()}, {free / 2**30:.1f} GiB free): "
                f"{o.message.splitlines()[0][:200]}")) from None
        outputs, inputs = tensor_bytes(answers), tensor_bytes(pristine)
        # the call cloned the inputs: the peak above what was held counts the copy, the outputs and the rest
        scratch = max(0, torch.cuda.max_memory_allocated() - held - inputs - outputs) if on_gpu else 0
        return answers, seconds, Footprint(inputs, outputs, params, scratch)

    # ---- the comparison -----------------------------------------------------------------------------------
    def compare(self, seed: int, kind: str, specs: list) -> None:

        refs = self.answers(seed, kind)
        self.compared.add((seed, kind))
        problem = _fits(specs, refs, self.k.device)
        if problem:
            result = {"ok": False, "max_abs_err": 0.0, "max_rel_err": 0.0, "rel_l2": 0.0, "message": problem,
                      "mismatch": None}
            send_message(self.k.sock, send=False, result=self.record(seed, kind, result))
            return
        outs = self.shared_outputs(specs)
        if outs is None:  # through the socket: on the CPU, or where the GPU's memory cannot be shared
            send_message(self.k.sock, send=True)
            outs = [recv_tensor(self.k.sock, spec) for spec in specs]
        on = "cuda" if self.k.device == "cuda" else "cpu"
        if on == "cuda":  # answers in host memory come over a chunk at a time (chunks.pairs)
            outs = [o.to("cuda") for o in outs]
        result = compare(outs, refs, self.tolerance, degenerate=bool(self.degenerate), device=on)
        del outs, refs
        if on == "cuda":
            self.torch.cuda.empty_cache()
        send_message(self.k.sock, result=self.record(seed, kind, result))

    def shared_outputs(self, specs: list) -> list | None:
        """The worker's GPU outputs read in place through CUDA IPC, or None where they were not shared or do not
        open (inside bubblewrap's namespaces, say): then they come through the socket."""

        if self.k.device != "cuda" or not all("ipc" in spec for spec in specs):
            return None
        try:
            return [open_cuda(spec) for spec in specs]
        except ValueError as e:
            if not self.k.ipc_failed:
                print(f"answer keeper: {e}; outputs come through the socket", file=sys.stderr, flush=True)
            self.k.ipc_failed = True
            return None

    def record(self, seed: int, kind: str, result: dict) -> dict:
        """Tell the pool first, then the worker: the pool's record is what the verdict is held against."""
        self.failed |= not result["ok"]
        self.k.send(event="compared", id=self.id, seed=seed, kind=kind, ok=bool(result["ok"]),
                    max_abs_err=result["max_abs_err"])
        return result

    def cleanup(self) -> None:
        for name in [m[0].__name__ for m in self.models.values()]:
            sys.modules.pop(name, None)
        self.models.clear()
        self.held.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.k.device == "cuda":
            self.torch.cuda.empty_cache()


def _fits(specs: list, refs: list, device: str) -> str:
    """Why the announced outputs cannot match the answers (count, shape, dtype, device), or ''."""
    if len(specs) != len(refs):
        return f"returned {len(specs)} outputs, reference returns {len(refs)}"
    for i, (spec, ref) in enumerate(zip(specs, refs)):
        name = f"output {i}" if len(refs) > 1 else "output"
        if list(spec.get("shape", [])) != list(ref.shape):
            return f"{name} has shape {tuple(spec.get('shape', []))}, reference {tuple(ref.shape)}"
        if spec.get("dtype") != str(ref.dtype).removeprefix("torch."):
            return f"{name} has dtype torch.{spec.get('dtype')}, reference {ref.dtype}"
        if spec.get("device") != device:
            return f"{name} is on {spec.get('device')}, expected {device}"
    return ""
