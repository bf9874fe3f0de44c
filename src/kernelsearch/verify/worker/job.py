"""One job: a candidate against a problem, in order: static checks, reference pre-run and memory plan, build,
first call, trials, extra checks, timing. Each step either passes or ends the job with an Outcome."""
from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from pathlib import Path

from ..checks.precision_notes import tf32_warning
from ..checks.static_checks import check_source
from ..errors import Found, Outcome, describe, problem_call
from ..harness.calls import Calls
from ..harness.correctness import compare
from ..harness.gpu_kernels import gpu_profiler, own_gpu_kernels
from ..harness.memory import MemoryPlan, Poison, held_tensors, memory_now, plan_memory, plans_memory, tensor_bytes
from ..harness.modules import DTYPES, build_model, import_source, load_problem
from ..harness.stopwatch import Stopwatch
from ..verdict import TIMING_SEED, Status
from .compile_only import compile_only
from .extra_checks import check_contribution, check_determinism, check_variant
from .runtime_guards import OpRecorder
from .timing_step import time_candidate
from .work_estimate import too_large_for_the_interpreter

# The first call compiles Triton kernels (autotuning tries many configurations on a GPU; the interpreter on the
# CPU runs ~1000x slower than torch), so its limit is a floor plus a multiple of the reference's own time; a
# hang then ends within about a minute instead of the build's 300 s.
FIRST_CALL_FLOOR_S = {"cpu": 30.0, "cuda": 90.0}
FIRST_CALL_TIMES_REFERENCE = {"cpu": 2000.0, "cuda": 200.0}
# Each later candidate call (trials, extra checks) runs without compiling: a floor plus a multiple of the first
# call's time, so that a kernel that hangs on its second call is also a timeout within a minute.
CALL_FLOOR_S = 30.0
CALL_TIMES_FIRST = 10.0
# The answer keeper's work (the reference's answer, reading the outputs) is ours, not the candidate's: it gets its
# own limit, a floor plus time per GiB of outputs (the socket path read ~0.15 GiB/s on an H200: 3_Batched_matrix_
# multiplication's 0.5 GiB took ~3.5 s a comparison; CUDA IPC reads in place).
KEEPER_FLOOR_S = 60.0
KEEPER_S_PER_GIB = 10.0


class Job:
    def __init__(self, worker, req, job_id: str, workdir: Path, budget: int = 0):
        self.w, self.req, self.id, self.workdir = worker, req, job_id, workdir
        self.budget = budget  # device bytes for this job beside others on its GPU (gpu_share.py); 0: the GPU's
        self.torch = worker.torch
        self.device = worker.device
        self.dtype = getattr(self.torch, DTYPES[req.dtype])
        self.phase = "static"
        self.modules: list[str] = []
        self.clock = Stopwatch()  # the verdict's step_s
        self.poison = Poison(self.device, self.clock)
        self.calls = Calls(self.torch, self.device, self.dtype, self.poison, workdir, self.clock)
        self.plan: MemoryPlan | None = None
        self.first_call_ops: list[str] = []
        self.tolerance = req.resolved_tolerance()
        self.reference_s = 0.0

    @property
    def broke_context(self) -> bool:
        return self.calls.broke_context

    # ---- the steps, top to bottom ------------------------------------------------------------------------
    def run(self, v) -> None:
        req = self.req
        v.tolerance = self.tolerance.describe()
        report = check_source(req.candidate_source, f"{req.candidate_name}.py")
        v.language = report.language
        if report.syntax_error:
            raise Outcome(Status.COMPILE_ERROR, f"syntax error at {report.syntax_error}")
        if not report.has_model_new:
            raise Outcome(Status.COMPILE_ERROR, "the candidate defines no class ModelNew")
        if report.violations:
            raise Outcome(Status.REJECTED, "; ".join(report.violations))
        tf32 = tf32_warning(req.candidate_source, req.dtype, self.device)
        if tf32:
            v.warnings.append(tf32)

        self.send_phase("reference")
        problem = self.load_problem(req.problem_source, "problem")
        if self.device == "cpu":
            too_large = too_large_for_the_interpreter(problem, req)
            if too_large:
                raise too_large
        init_inputs = problem_call(problem.get_init_inputs, "get_init_inputs()")
        reference = self.build(problem.Model, init_inputs, "Model", Status.PROBLEM_ERROR)

        if self.device == "cpu" and report.language in ("cuda", "both"):
            v.timing_unavailable = "no GPU"
            raise compile_only(self, init_inputs)

        # The answers are computed and held by the keeper, a process the candidate cannot reach (keeper.py)
        with self.clock("keeper"):
            prepared = self.w.keeper.prepare(self.id)
        self.calls.adopt(prepared.aliases, prepared.mutates, prepared.broadcasts)
        self.reference_s = prepared.reference_s
        if prepared.footprint is not None and plans_memory(self.device):
            self.plan = plan_memory(prepared.footprint, *memory_now(self.device, self.budget, prepared.device_bytes),
                                    keeper_holds=prepared.device_bytes)
            v.memory, v.footprint = self.plan.describe(), vars(prepared.footprint)
        if prepared.degenerate:  # the keeper's comparisons hold the outputs to the relative L2 error too
            v.warnings.append(f"degenerate reference ({prepared.degenerate}): outputs must also match in relative "
                              "L2 error")

        if self.device == "cuda" and req.timing:
            # The torch.compile baseline is built before the candidate's code is loaded: compiling spawns
            # processes (Inductor's compile workers, the C compiler) that a candidate may not. On inputs no
            # comparison uses: the reference's outputs here are not answers to anything.
            with self.clock("compile_baseline"):
                self.w.compiled.get(self.baseline_key(problem), reference,
                                    self.calls.inputs(problem, req.seed + TIMING_SEED))

        self.send_phase("compile")
        with self.clock("compile"):
            model_new = self.compile_candidate(v, init_inputs, problem.Model)
        first_call_limit = FIRST_CALL_FLOOR_S[self.device] + FIRST_CALL_TIMES_REFERENCE[self.device] * self.reference_s
        self.send_phase("first_call", limit_s=first_call_limit)
        began = time.perf_counter()
        with self.clock("first_call"):
            self.first_call(v, problem, model_new)
        call_limit = CALL_FLOOR_S + CALL_TIMES_FIRST * (time.perf_counter() - began + self.reference_s)
        self.calls.before_call = lambda: self.send_phase(self.phase, limit_s=call_limit)

        self.send_phase("run")
        first_output = None
        for t in range(req.trials):
            outs = self.trial(v, t, problem, model_new)
            if t == 0:
                first_output = outs
        self.record(v, check_determinism(self, problem, model_new, first_output))
        del first_output, outs  # scrubbed; their memory goes back before the second shape and timing
        self.record(v, check_contribution(self, problem, model_new))
        # KernelBench's rules judge at the problem's shapes: the second shape comes last there, where nothing it
        # finds (a crash included) can change what came before
        if req.rules != "kernelbench":
            self.record(v, check_variant(self, reference, model_new, init_inputs))
        self.check_integrity()

        if self.device != "cuda":
            v.timing_unavailable = "no GPU: timing needs CUDA (the interpreter's speed means nothing)"
        elif req.timing:
            self.send_phase("timing")
            beside = self.budget and not self.take_gpu_alone()
            with self.clock("timing"):
                timed = time_candidate(self, problem, reference, model_new, beside=beside)
            v.timing = timed.timing
            for found in timed.found:
                self.record(v, found)
        if req.rules == "kernelbench":
            self.record(v, check_variant(self, reference, model_new, init_inputs))
        v.message = self.summary(v)

    def record(self, v, found: Found) -> None:
        """What a check found, into the verdict; its outcome, if any, ends the job."""
        if found.entry is not None:
            v.checks[found.check] = found.entry
        v.warnings.extend(found.warnings)
        if found.outcome is not None:
            raise found.outcome

    def trial(self, v, t, problem, model_new) -> list:
        """One trial with fresh inputs, judged by the keeper. Even trials have the reference's answer made first,
        odd ones after the candidate's call; free memory is poisoned before the candidate runs."""
        seed = self.req.seed + t
        recorder = OpRecorder(self.w.counter) if t == 0 else None
        self.w.counter.reset()
        if t % 2 == 0:
            self.ready(seed, "trial")
        outs = self.call(model_new, problem, seed, recorder)
        if recorder is not None:
            self.judge_pytorch_use(v, recorder)
        result = self.judge(outs, seed, "trial")
        if t > 0:  # trial 0's output is kept for the determinism check
            self.poison.scrub(outs, protect=held_tensors(model_new))
        mismatch = result.pop("mismatch")
        v.trials.append({"trial": t, "seed": seed, "order": "reference_first" if t % 2 == 0 else "candidate_first",
                         **result, **({"mismatch": mismatch} if mismatch else {})})
        self.check_integrity()
        if not result["ok"]:
            raise Outcome(Status.INCORRECT, f"trial {t} (seed {seed}): {result['message']}")
        return outs

    def call(self, model_new, problem, seed: int, recorder=None) -> list:
        """The candidate's outputs on the inputs for `seed`, with free memory poisoned just before its call (an
        output it never writes cannot hold a right answer left behind). Its inputs go with this frame."""
        pristine = self.calls.inputs(problem, seed)
        self.poison.fill_free_memory()
        return self.calls.candidate(model_new, pristine, recorder)

    def call_and_judge(self, model_new, problem, seed: int, kind: str) -> dict:
        """`call`, the keeper's comparison of the outputs with its answers for (seed, kind), and the outputs
        scrubbed: the extra checks' one candidate call."""
        outs = self.call(model_new, problem, seed)
        result = self.judge(outs, seed, kind)
        self.poison.scrub(outs, protect=held_tensors(model_new))
        return result

    def judge(self, outs: list, seed: int, kind: str) -> dict:
        """The keeper's comparison of the outputs with its answers for (seed, kind). On a GPU the allocator's
        cached blocks go back first: the keeper may need the room to compute the answers."""
        if self.device == "cuda":
            self.torch.cuda.empty_cache()
        self.send_phase(self.phase, limit_s=KEEPER_FLOOR_S + KEEPER_S_PER_GIB * tensor_bytes(outs) / 2**30)
        with self.clock("keeper"):
            return self.w.keeper.compare(self.id, seed, kind, outs)

    def ready(self, seed: int, kind: str) -> None:
        """The keeper computes the answers for (seed, kind) now, before the candidate's call, under its own limit."""
        outputs = self.plan.footprint.outputs if self.plan else 0
        self.send_phase(self.phase, limit_s=KEEPER_FLOOR_S + KEEPER_S_PER_GIB * outputs / 2**30)
        with self.clock("keeper"):
            self.w.keeper.ready(self.id, seed, kind)

    def baseline_key(self, problem) -> str:
        return f"{problem.__ks_key__}:{self.req.dtype}"

    def compare(self, outs: list, expected: list) -> dict:
        """Outputs against other outputs of the candidate's (the determinism check), at the request's tolerance."""
        return compare(outs, expected, self.tolerance, device=self.device)

    # ---- problem side --------------------------------------------------------------------------------------
    def load_problem(self, source: str, kind: str):
        return load_problem(lambda: self.import_file(source, kind))

    def build(self, cls, init_inputs, what: str, status: str, like=None):
        """cls(*init_inputs) from the job's seed; `like`: the problem's reference class (modules.build_model)."""
        try:
            return build_model(self.torch, cls, init_inputs, self.req.seed, self.device, self.dtype, like)
        except Exception as e:
            if status == Status.PROBLEM_ERROR:
                raise Outcome(status, f"{what}(*get_init_inputs()) failed: {describe(e)}") from None
            raise self.calls.fail(e, f"{what}(*get_init_inputs())") from None

    # ---- candidate side ------------------------------------------------------------------------------------
    def compile_candidate(self, v, init_inputs, reference_class):
        """Import the candidate (load_inline builds run here) and build ModelNew from the reference's seed."""
        self.w.prebuilt.candidate = self.req.candidate_source  # its load_inline modules, where the pool built them
        try:
            module = self.import_file(self.req.candidate_source, "candidate")
        except Exception as e:
            raise self.calls.fail(e, "importing the candidate") from None
        if not hasattr(module, "ModelNew"):
            raise Outcome(Status.COMPILE_ERROR, "the candidate defines no class ModelNew")
        self.check_integrity()
        return self.build(module.ModelNew, init_inputs, "ModelNew", Status.RUNTIME_ERROR, like=reference_class)

    def first_call(self, v, problem, model_new) -> None:
        """The first forward compiles Triton kernels; its output is not judged. On a GPU it runs under the
        profiler, so that the kernels it launched can be named."""
        torch = self.torch
        args = self.calls.inputs(problem, self.req.seed)
        self.w.counter.reset()
        recorder = OpRecorder(self.w.counter)
        profiler, no_profiler = gpu_profiler() if self.device == "cuda" else (contextlib.nullcontext(), None)
        if no_profiler:
            v.warnings.append(no_profiler)
        try:
            with torch.no_grad(), recorder, profiler:
                model_new(*args)
                self.calls.sync()
        except Exception as e:
            raise self.calls.fail(e, "the first forward call") from None
        del args
        self.first_call_ops = recorder.compute_ops()
        self.check_integrity()
        if self.device == "cuda" and self.w.counter.total and not isinstance(profiler, contextlib.nullcontext):
            self.record(v, own_gpu_kernels(profiler, self.req.candidate_source))

    def judge_pytorch_use(self, v, recorder) -> None:
        """Judged on a steady-state call (trial 0), not the first: one-time set-up such as building an index
        or a cache may use PyTorch; the per-call work must launch the candidate's own kernels."""
        v.kernel_launches = self.w.counter.total
        v.pytorch_ops = recorder.compute_ops()
        setup_only = sorted(set(self.first_call_ops) - set(v.pytorch_ops))
        if setup_only:
            note = f"PyTorch on the first call only (set-up): {', '.join(setup_only)}"
            v.checks["first_call_only_ops"] = {"ok": None, "ops": setup_only, "note": note}
        if v.kernel_launches == 0:
            did = ", ".join(v.pytorch_ops) or "no compute at all"
            raise Outcome(Status.REJECTED, f"forward launched none of the candidate's own kernels (PyTorch ran: {did})")
        if v.pytorch_ops:
            if self.req.strict:
                raise Outcome(Status.REJECTED, f"--strict: compute left in PyTorch: {', '.join(v.pytorch_ops)}")
            v.warnings.append(f"compute left in PyTorch: {', '.join(v.pytorch_ops)}")

    def check_integrity(self) -> None:
        violations = self.w.integrity.violations() + [f"refused at run time: {r}" for r in self.w.refusals()]
        if violations:
            raise Outcome(Status.REJECTED, "; ".join(violations))

    # ---- helpers -------------------------------------------------------------------------------------------
    def summary(self, v) -> str:
        parts = [f"matches the reference on {len(v.trials)} trials"]
        if v.checks.get("second_shape", {}).get("ok"):
            parts.append(f"and at {v.checks['second_shape']['changes']}")
        if v.timed and v.timed.speedup("eager") is not None:
            parts.append(f"; {v.timed.short()}")
        if v.pytorch_ops:
            parts.append(f"; PyTorch still computes: {', '.join(v.pytorch_ops)}")
        return " ".join(parts).replace(" ;", ";")

    def import_file(self, source: str, kind: str):
        """Load source as a module from a real file (Triton reads kernel source through inspect)."""
        name = f"ks_{kind}_{self.id}"
        self.modules.append(name)
        return import_source(source, name, self.workdir / f"{kind}.py")

    def take_gpu_alone(self) -> bool:
        """A job beside others on its GPU asks the pool to run alone for its timing, and waits for the answer on
        stdin (pool_worker.take_gpu_alone); False when the pool's wait ran out."""
        self.w.send(event="alone", id=self.id)
        with self.clock("waiting_for_gpu"):
            answer = json.loads(sys.stdin.readline() or "{}")
        return answer.get("gpu") == "alone"

    def send_phase(self, phase: str, limit_s: float | None = None) -> None:
        self.phase = phase
        self.w.send(event="phase", id=self.id, phase=phase, **({"limit_s": round(limit_s, 1)} if limit_s else {}))

    def cleanup(self) -> None:
        self.w.prebuilt.candidate = None
        for name in self.modules:
            sys.modules.pop(name, None)
        gc.collect()
        # Poison before memory goes back: cudaMalloc and malloc hand out stale contents, and the next job may
        # run the same problem with the same seeds.
        self.poison.fill_free_memory()
        if self.device == "cuda":
            self.torch.cuda.empty_cache()

