"""The verifier's worker process: runs untrusted candidates one at a time and answers with JSON verdicts.

Protocol: one JSON request per line on stdin; JSON events, one per line, on the file descriptor named by
KS_RESPONSE_FD: {"event": "ready"}, {"event": "phase", "phase": ...}, {"event": "verdict", ...}. The
candidate's own prints go to stderr (the worker log), never into the protocol."""
from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
TIMING_INPUT_SETS = 4  # rotated during timing so that the L2 and any cache keyed on inputs see new data


class Outcome(Exception):
    """Ends a job early with a verdict status."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def main() -> None:
    protocol = os.fdopen(int(os.environ["KS_RESPONSE_FD"]), "w", buffering=1)
    os.dup2(2, 1)  # anything printed from here on lands in the worker log
    worker = Worker(device=os.environ.get("KS_DEVICE", "cpu"), protocol=protocol)
    from .sandbox import network_isolated
    worker.send(event="ready", network_isolated=network_isolated(), **worker.info)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        job_id = request.pop("id")
        verdict, healthy = worker.handle(job_id, request)
        worker.send(event="verdict", id=job_id, verdict=verdict, healthy=healthy)
        if not healthy:
            break


class Worker:
    def __init__(self, device: str, protocol):
        import torch
        import torch._dynamo  # noqa: F401  (rebinds torch.manual_seed on import: before the snapshot)
        import torch.utils.flop_counter  # noqa: F401
        import triton  # noqa: F401  (imported before any candidate, so its launch path can be counted)

        from . import correctness, timing
        from .runtime_guards import Integrity, LaunchCounter

        self.torch, self.protocol, self.device = torch, protocol, device
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference is the standard: true fp32
        torch.backends.cudnn.allow_tf32 = False
        if device == "cuda":
            torch.cuda.init()
            torch.ones(1, device="cuda").sum().item()  # create the context once, while warm
        self.counter = LaunchCounter()
        self.counter.install()
        self.integrity = Integrity(extra_modules=[correctness, timing])
        self.baselines: dict[str, dict] = {}  # problem key -> eager/compile timings, measured once per worker
        self.info = self.describe()
        self.jobs = 0
        self.current_job = None

    def describe(self) -> dict:
        import triton
        torch = self.torch
        name = torch.cuda.get_device_name() if self.device == "cuda" else "cpu (Triton interpreter)"
        return {"device_name": name, "torch": torch.__version__, "triton": triton.__version__, "pid": os.getpid()}

    def send(self, **event) -> None:
        self.protocol.write(json.dumps(event, default=str) + "\n")

    def handle(self, job_id: str, request: dict) -> tuple[dict, bool]:
        from .verdict import Verdict, VerifyRequest

        req = VerifyRequest(**request)
        workdir = Path.cwd() / f"job_{job_id}"
        workdir.mkdir(parents=True, exist_ok=True)
        job = Job(self, req, job_id, workdir)
        verdict = Verdict(status="correct", message="", problem=req.problem_name, candidate=req.candidate_name,
                          device=self.info["device_name"], dtype=req.dtype, overrides=req.overrides)
        began = time.perf_counter()
        tainted = False
        try:
            job.run(verdict)
        except Outcome as o:
            verdict.status, verdict.message = o.status, o.message
        except BaseException as e:  # a verifier bug must still come back as a verdict
            traceback.print_exc()
            verdict.status, verdict.message = "runtime_error", f"verifier error: {type(e).__name__}: {e}"
        verdict.phase = job.phase
        verdict.elapsed_s = round(time.perf_counter() - began, 3)
        try:  # after a sticky CUDA error every device call raises: then the process is done for
            violations = self.integrity.violations()
            job.cleanup()
        except Exception:
            traceback.print_exc()
            violations, job.broke_context = [], True
        if violations:
            tainted = True
            self.integrity.restore_settings()
            if verdict.status in ("correct", "incorrect", "runtime_error"):
                verdict.status, verdict.message = "rejected", "; ".join(violations)
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


class Job:
    """One candidate against one problem: static checks, compile, trials, extra checks, timing."""

    def __init__(self, worker: Worker, req, job_id: str, workdir: Path):
        self.w, self.req, self.id, self.workdir = worker, req, job_id, workdir
        self.torch = worker.torch
        self.dtype = getattr(self.torch, DTYPES[req.dtype])
        self.phase = "static"
        self.modules: list[str] = []
        self.broke_context = False
        self.freed_sizes: list[int] = []
        self.reference_aliases = self.reference_mutates = self.reference_broadcasts = False
        self.first_call_ops: list[str] = []

    # ---- the steps, top to bottom ------------------------------------------------------------------------
    def run(self, v) -> None:
        from .correctness import TOLERANCE, degenerate_reason
        from .static_checks import check_source

        req = self.req
        report = check_source(req.candidate_source, f"{req.candidate_name}.py")
        v.language = report.language
        if report.syntax_error:
            raise Outcome("compile_error", f"syntax error at {report.syntax_error}")
        if not report.has_model_new:
            raise Outcome("compile_error", "the candidate defines no class ModelNew")
        if report.violations:
            raise Outcome("rejected", "; ".join(report.violations))

        problem = self.load_problem(req.problem_source, "problem")
        if self.w.device == "cpu":
            self.check_cpu_budget(problem)
        init_inputs = self.problem_call(problem.get_init_inputs, "get_init_inputs()")
        reference = self.build(problem.Model, init_inputs, "Model", "problem_error")

        if self.w.device == "cpu" and report.language in ("cuda", "both"):
            return self.compile_only(v, init_inputs)

        refs = [self.reference_outputs(reference, self.inputs(problem, req.seed + t)) for t in range(min(2, req.trials))]
        degenerate = degenerate_reason(refs, TOLERANCE[req.dtype])
        if degenerate:
            v.warnings.append(f"degenerate reference ({degenerate}): outputs must also match in relative L2 error")
        for outputs in refs:  # these are trial 0's and 1's answers: they must not be freed as readable memory
            self.scrub(outputs)
        del refs

        self.send_phase("compile")
        model_new = self.compile_candidate(v, problem, init_inputs)

        self.send_phase("run")
        first_output = None
        for t in range(req.trials):
            outs = self.trial(v, t, problem, reference, model_new, degenerate)
            if t == 0:
                first_output = outs
        self.check_determinism(v, problem, model_new, first_output)
        self.check_variant(v, reference, model_new, init_inputs, degenerate)
        self.check_integrity()

        if self.w.device != "cuda":
            v.timing_unavailable = "no GPU: timing needs CUDA (the interpreter's speed means nothing)"
        elif req.timing:
            self.send_phase("timing")
            self.time_all(v, problem, reference, model_new, degenerate)
        v.message = self.summary(v)

    def trial(self, v, t, problem, reference, model_new, degenerate) -> list:
        """One trial with fresh inputs. Even trials run the reference first, odd ones the candidate first,
        with free memory poisoned in between, so neither order can leak an answer."""
        from .correctness import compare
        from .runtime_guards import OpRecorder

        seed = self.req.seed + t
        pristine = self.inputs(problem, seed)
        recorder = OpRecorder(self.w.counter) if t == 0 else None
        self.w.counter.reset()
        if t % 2 == 0:
            refs = self.reference_outputs(reference, pristine)
            self.poison()
            outs = self.candidate_outputs(model_new, pristine, recorder)
        else:
            self.poison()
            outs = self.candidate_outputs(model_new, pristine, recorder)
            refs = self.reference_outputs(reference, pristine)
        if recorder is not None:
            self.judge_pytorch_use(v, recorder)
        result = compare(outs, refs, self.req.dtype, degenerate=bool(degenerate))
        # Answers freed unreadable, since the next job may run these seeds: our copy, and the candidate's (trial
        # 0's is kept for the determinism check). A candidate that kept its output to return again reads NaN.
        self.scrub(refs)
        if t > 0:
            self.scrub(outs, protect=self.held_tensors(model_new))
        mismatch = result.pop("mismatch")
        v.trials.append({"trial": t, "seed": seed, "order": "reference_first" if t % 2 == 0 else "candidate_first",
                         **result, **({"mismatch": mismatch} if mismatch else {})})
        self.check_integrity()
        if not result["ok"]:
            raise Outcome("incorrect", f"trial {t} (seed {seed}): {result['message']}")
        return outs

    # ---- problem side --------------------------------------------------------------------------------------
    def load_problem(self, source: str, kind: str):
        try:
            return self.import_file(source, kind)
        except Exception as e:
            raise Outcome("problem_error", f"the problem failed to load: {_describe(e)}") from None

    def problem_call(self, fn, what: str):
        try:
            return fn()
        except Exception as e:
            raise Outcome("problem_error", f"{what} failed: {_describe(e)}") from None

    def check_cpu_budget(self, problem) -> None:
        """The interpreter runs ~1000x slower than torch: refuse problems that would take hours, and say how
        to shrink them with --set."""
        from .work_estimate import estimate_work

        elements, flops = estimate_work(problem)
        if elements > self.req.max_cpu_elements or flops > self.req.max_cpu_flops:
            constants = ", ".join(f"{k}={v}" for k, v in _int_constants(problem).items()) or "none found"
            raise Outcome("problem_error", (
                f"too large for the CPU interpreter: {elements:.3g} tensor elements and {flops:.3g} FLOPs per call "
                f"(limits {self.req.max_cpu_elements:.3g} and {self.req.max_cpu_flops:.3g}); shrink it with "
                f"--set NAME=VALUE (size constants: {constants}), or run on a GPU"))

    def inputs(self, problem, seed: int) -> list:
        """Inputs generated on the CPU from a seed, then moved: floating tensors cast to the dtype, integer
        tensors left as they are (KernelBench's harness casts them too; that breaks index inputs)."""
        torch = self.torch
        torch.manual_seed(seed)
        raw = self.problem_call(problem.get_inputs, "get_inputs()")
        device = "cuda" if self.w.device == "cuda" else "cpu"
        moved = []
        for x in raw:
            if isinstance(x, torch.Tensor):
                x = x.to(device)
                if x.is_floating_point():
                    x = x.to(self.dtype)
            moved.append(x)
        return moved

    def build(self, cls, init_inputs, what: str, status: str):
        torch = self.torch
        torch.manual_seed(self.req.seed)  # reference and candidate start from the same parameters
        try:
            model = cls(*init_inputs)
            device = "cuda" if self.w.device == "cuda" else "cpu"
            return model.to(device=device, dtype=self.dtype)
        except Exception as e:
            if status == "problem_error":
                raise Outcome(status, f"{what}(*get_init_inputs()) failed: {_describe(e)}") from None
            raise Outcome(*self.classify(e, f"{what}(*get_init_inputs())")) from None

    def reference_outputs(self, reference, pristine: list) -> list:
        from .correctness import flatten

        args = _clone(pristine)
        try:
            with self.torch.no_grad():
                result = flatten(reference(*args))
        except Exception as e:
            raise Outcome("problem_error", f"the reference Model failed: {_describe(e)}") from None
        # What the reference itself does is allowed to the candidate: some problems are in-place ops or views.
        self.reference_aliases |= any(_overlaps(r, a) for r in result for a in args if isinstance(a, self.torch.Tensor))
        self.reference_mutates |= any(isinstance(a, self.torch.Tensor) and not _same(a, p) for a, p in zip(args, pristine))
        self.reference_broadcasts |= any(0 in r.stride() for r in result if r.numel() > 1)
        kept = [r.clone() for r in result]
        # Every reference output is freed twice over (this original now, its clone after its trial): the
        # poison must be able to claim each such block, or a stale right answer can reach the candidate.
        self.freed_sizes = (self.freed_sizes + 2 * [r.untyped_storage().nbytes() for r in result])[-64:]
        # Overwrite the original before freeing it, unless it is memory the reference keeps (an input, a
        # parameter, a tensor of the problem module): the CPU poison only claims blocks by size, and glibc does
        # not always hand the same block back to it (seen: 5 of 16000 elements wrong, the rest a right answer).
        self.scrub(result, protect=args + self.held_tensors(reference))
        del result  # its memory is freed and then poisoned before the candidate allocates
        self.sync()
        return kept

    # ---- candidate side ------------------------------------------------------------------------------------
    def compile_candidate(self, v, problem, init_inputs):
        from .runtime_guards import OpRecorder

        torch = self.torch
        try:
            module = self.import_file(self.req.candidate_source, "candidate")
        except Exception as e:
            raise Outcome(*self.classify(e, "importing the candidate")) from None
        if not hasattr(module, "ModelNew"):
            raise Outcome("compile_error", "the candidate defines no class ModelNew")
        self.check_integrity()
        model_new = self.build(module.ModelNew, init_inputs, "ModelNew", "runtime_error")
        args = _clone(self.inputs(problem, self.req.seed))
        self.w.counter.reset()
        recorder = OpRecorder(self.w.counter)
        profiler = self.gpu_profiler(v)
        try:
            with torch.no_grad(), recorder, profiler:
                model_new(*args)  # the first call compiles Triton kernels; its output is not judged
                self.sync()
        except Exception as e:
            raise Outcome(*self.classify(e, "the first forward call")) from None
        self.first_call_ops = recorder.compute_ops()
        self.check_integrity()
        if self.w.device == "cuda" and self.w.counter.total and not isinstance(profiler, contextlib.nullcontext):
            self.count_own_gpu_kernels(v, profiler)
        return model_new

    def judge_pytorch_use(self, v, recorder) -> None:
        """Judged on a steady-state call (trial 0), not the first: one-time set-up such as building an index
        or a cache may use PyTorch; the per-call work must launch the candidate's own kernels."""
        v.kernel_launches = self.w.counter.total
        v.pytorch_ops = recorder.compute_ops()
        setup_only = sorted(set(self.first_call_ops) - set(v.pytorch_ops))
        if setup_only:
            v.checks["first_call_only_ops"] = {"ok": None, "ops": setup_only,
                                               "note": f"PyTorch on the first call only (set-up): {', '.join(setup_only)}"}
        if v.kernel_launches == 0:
            did = ", ".join(v.pytorch_ops) or "no compute at all"
            raise Outcome("rejected", f"forward launched none of the candidate's own kernels (PyTorch ran: {did})")
        if v.pytorch_ops:
            if self.req.strict:
                raise Outcome("rejected", f"--strict: compute left in PyTorch: {', '.join(v.pytorch_ops)}")
            v.warnings.append(f"compute left in PyTorch: {', '.join(v.pytorch_ops)}")

    def gpu_profiler(self, v):
        """On the GPU, a call into a load_inline module proves nothing by itself: it may only call ATen from
        C++. The first forward runs under the profiler, so that the kernels it launched can be named."""
        if self.w.device != "cuda":
            return contextlib.nullcontext()
        try:
            from torch.profiler import ProfilerActivity, profile
            return profile(activities=[ProfilerActivity.CUDA])
        except Exception as e:
            v.warnings.append(f"no profiler, kernels not named: {_describe(e)}")
            return contextlib.nullcontext()

    def count_own_gpu_kernels(self, v, profiler) -> int:
        """Kernels of the first forward whose names the candidate's source defines (__global__ functions and
        @triton.jit functions); none of them means the GPU work was PyTorch's."""
        import re

        source = self.req.candidate_source
        own = set(re.findall(r"__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?\w[\w:<>]*\s+(\w+)\s*\(", source))
        own |= set(re.findall(r"@triton\.(?:jit|autotune|heuristics)[\s\S]*?def\s+(\w+)", source))
        try:
            kernels = [e.name for e in profiler.events() if "CUDA" in str(e.device_type)]
        except Exception as e:
            v.warnings.append(f"could not read the profiler: {_describe(e)}")
            return 0
        mine = [k for k in kernels if any(name in k for name in own)]
        v.checks["gpu_kernels"] = {"own": sorted(set(mine)), "other": sorted(set(kernels) - set(mine))[:20]}
        if not mine:
            ran = ", ".join(sorted(set(kernels))[:6]) or "no kernels"
            raise Outcome("rejected", f"forward ran none of the candidate's own GPU kernels (the GPU ran: {ran})")
        return len(mine)

    def candidate_outputs(self, model_new, pristine: list, recorder=None) -> list:
        from .correctness import flatten

        torch = self.torch
        args = _clone(pristine)
        try:
            with torch.no_grad(), recorder or contextlib.nullcontext():
                raw = model_new(*args)
                self.sync()
        except Exception as e:
            raise Outcome(*self.classify(e, "forward")) from None
        for item in raw if isinstance(raw, (tuple, list)) else [raw]:
            if isinstance(item, torch.Tensor) and type(item) is not torch.Tensor:
                raise Outcome("rejected", f"forward returned a {type(item).__name__} (a torch.Tensor subclass: its "
                                          "values can be computed lazily, outside the timed call)")
        try:
            outs = flatten(raw)
        except TypeError as e:
            raise Outcome("rejected", f"{e} (an object whose work happens later)") from None
        # Its right answers must not outlive it either: the next job (same problem, same seeds) could be handed
        # this memory. Poisoned at clean-up.
        self.freed_sizes = (self.freed_sizes + [o.untyped_storage().nbytes() for o in outs])[-64:]
        for j, out in enumerate(outs):
            for i, arg in enumerate(args):
                if not self.reference_aliases and isinstance(arg, torch.Tensor) and _overlaps(out, arg):
                    raise Outcome("rejected", f"output {j} shares memory with input {i} (aliasing an input)")
            if not self.reference_broadcasts and any(st == 0 and n > 1 for st, n in zip(out.stride(), out.shape)):
                raise Outcome("rejected", f"output {j} is a broadcast view (stride 0): most of it was never computed")
        for i, (arg, original) in enumerate(zip(args, pristine)):
            if not self.reference_mutates and isinstance(arg, torch.Tensor) and not _same(arg, original):
                raise Outcome("rejected", f"forward modified its input {i} in place")
        return outs

    def compile_only(self, v, init_inputs) -> None:
        """A CUDA candidate on a machine without a GPU: record its load_inline calls and compile them."""
        import torch.utils.cpp_extension as cpp_extension

        from .cuda_build import compile_check, recording_load_inline

        self.send_phase("compile")
        builds: list = []
        real = cpp_extension.load_inline
        cpp_extension.load_inline = recording_load_inline(builds)
        try:
            module = self.import_file(self.req.candidate_source, "candidate")
            if not builds:
                module.ModelNew(*init_inputs)  # some candidates build in __init__
        except Exception as e:
            if not builds:
                raise Outcome(*self.classify(e, "importing the candidate")) from None
        finally:
            cpp_extension.load_inline = real
        if not builds:
            raise Outcome("rejected", "a CUDA candidate that never calls load_inline")
        ok, message = compile_check(builds, self.workdir / "build", timeout_s=float(os.environ.get(
            "KS_COMPILE_TIMEOUT", "300")))
        if not ok:
            raise Outcome("compile_error", message)
        v.timing_unavailable = "no GPU"
        raise Outcome("compiled", f"{message}; a GPU is needed to run it, so it is not verified")

    # ---- extra checks --------------------------------------------------------------------------------------
    def check_determinism(self, v, problem, model_new, first_output) -> None:
        """Run trial 0 again: an output that moves between identical runs reads uninitialized memory or races."""
        from .correctness import compare

        self.poison()
        again = self.candidate_outputs(model_new, self.inputs(problem, self.req.seed))
        result = compare(again, first_output, self.req.dtype)
        self.scrub(again + first_output, protect=self.held_tensors(model_new))
        v.checks["determinism"] = {"ok": result["ok"], "max_abs_diff": result["max_abs_err"]}
        if not result["ok"]:
            raise Outcome("incorrect", "two runs on the same inputs disagree (reads uninitialized memory, or a "
                                       f"race): {result['message']}")

    def check_variant(self, v, reference, model_new, init_inputs, degenerate) -> None:
        """A second input shape, where the problem's size constants allow one: catches hard-coded sizes."""
        from .correctness import compare

        req = self.req
        if not req.variant_source:
            v.checks["second_shape"] = {"ok": None, "skipped": "no size constant can vary independently of the model"}
            return
        changes = ", ".join(f"{k}={new}" for k, (old, new) in req.variant_changes.items())
        try:
            variant = self.import_file(req.variant_source, "variant")
            variant_reference = self.build(variant.Model, init_inputs, "Model", "problem_error")
            same = _same_parameters(reference, variant_reference)
            pristine = self.inputs(variant, req.seed + 100)
            refs = self.reference_outputs(variant_reference, pristine) if same else None
        except Outcome as o:
            v.checks["second_shape"] = {"ok": None, "skipped": f"reference does not run at {changes}: {o.message}"}
            return
        if refs is None:
            v.checks["second_shape"] = {"ok": None, "skipped": f"the model itself changes at {changes}"}
            return
        self.poison()
        outs = self.candidate_outputs(model_new, pristine)
        result = compare(outs, refs, req.dtype, degenerate=bool(degenerate))
        v.checks["second_shape"] = {"ok": result["ok"], "changes": changes, "max_abs_err": result["max_abs_err"]}
        if not result["ok"]:
            raise Outcome("incorrect", f"wrong at a second input shape ({changes}), right at the sampled one "
                                       f"(hard-coded sizes?): {result['message']}")

    def check_integrity(self) -> None:
        violations = self.w.integrity.violations()
        if violations:
            raise Outcome("rejected", "; ".join(violations))

    # ---- timing --------------------------------------------------------------------------------------------
    def time_all(self, v, problem, reference, model_new, degenerate) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        from .correctness import compare
        from .timing import roofline_floor_ms, time_cuda

        torch, req = self.torch, self.req
        sets = [self.inputs(problem, req.seed + 1000 + k) for k in range(TIMING_INPUT_SETS)]  # never seen before
        with torch.no_grad():
            try:
                new = time_cuda(model_new, sets)
            except Exception as e:
                raise Outcome(*self.classify(e, "timing")) from None
            key = f"{problem.__ks_key__}:{req.dtype}"
            if key not in self.w.baselines:
                self.w.baselines[key] = self.time_baselines(reference, sets)
            base = self.w.baselines[key]
            with FlopCounterMode(display=False) as flop_counter:
                ref_out = reference(*sets[0])
        v.timing = {"candidate": new, **base}
        for name in ("eager", "compile"):
            if isinstance(base.get(name), dict):
                v.timing[f"speedup_vs_{name}"] = round(base[name]["median_ms"] / new["median_ms"], 4)
        self.check_integrity()

        # Re-check on inputs the candidate has not seen, after it ran many times: catches cached results.
        pristine = self.inputs(problem, req.seed + 2000)
        refs = self.reference_outputs(reference, pristine)
        self.poison()
        result = compare(self.candidate_outputs(model_new, pristine), refs, req.dtype, degenerate=bool(degenerate))
        v.checks["fresh_inputs_after_timing"] = {"ok": result["ok"], "max_abs_err": result["max_abs_err"]}
        if not result["ok"]:
            raise Outcome("incorrect", f"wrong on fresh inputs after timing (results cached?): {result['message']}")

        bytes_moved = sum(_nbytes(x) for x in sets[0]) + sum(_nbytes(x) for x in _as_list(ref_out)) + sum(
            p.numel() * p.element_size() for p in reference.parameters())
        floor = roofline_floor_ms(flop_counter.get_total_flops(), bytes_moved, req.dtype, v.device)
        if floor is not None:
            v.checks["roofline"] = {"floor_ms": floor, "flops": flop_counter.get_total_flops(), "bytes": bytes_moved}
            if new["median_ms"] < floor:
                v.warnings.append(f"implausible: {new['median_ms']:.4g} ms is under the roofline floor {floor:.4g} ms "
                                  "for this problem's FLOPs and bytes; a human should look at this kernel")

    def time_baselines(self, reference, sets) -> dict:
        from .timing import time_cuda

        torch = self.torch
        base = {"eager": time_cuda(reference, sets), "measured_at": time.time()}
        try:
            compiled = torch.compile(reference)
            base["compile"] = time_cuda(compiled, sets)
        except Exception as e:
            base["compile"] = f"unavailable: {_describe(e)}"
        return base

    # ---- helpers -------------------------------------------------------------------------------------------
    def summary(self, v) -> str:
        parts = [f"matches the reference on {len(v.trials)} trials"]
        if v.checks.get("second_shape", {}).get("ok"):
            parts.append(f"and at {v.checks['second_shape']['changes']}")
        if v.timing and "speedup_vs_eager" in v.timing:
            parts.append(f"; {v.timing['speedup_vs_eager']:.3g}x eager")
            if "speedup_vs_compile" in v.timing:
                parts.append(f"{v.timing['speedup_vs_compile']:.3g}x torch.compile")
        if v.pytorch_ops:
            parts.append(f"; PyTorch still computes: {', '.join(v.pytorch_ops)}")
        return " ".join(parts).replace(" ;", ";")

    def import_file(self, source: str, kind: str):
        """Load source as a module from a real file (Triton reads kernel source through inspect)."""
        name = f"ks_{kind}_{self.id}"
        path = self.workdir / f"{kind}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        self.modules.append(name)
        spec.loader.exec_module(module)
        import hashlib
        module.__ks_key__ = hashlib.sha256(source.encode()).hexdigest()[:16]
        return module

    def classify(self, e: BaseException, where: str) -> tuple[str, str]:
        text = str(e)
        # InterpreterError: Triton's interpreter met an error while tracing the kernel body, which is a
        # CompilationError when the same kernel is compiled for a GPU.
        compile_markers = ("CompilationError", "Error building extension", "SyntaxError", "ImportError",
                           "ModuleNotFoundError", "IndentationError", "NameError", "InterpreterError")
        kind = type(e).__name__
        if "CUDA error" in text or "illegal memory access" in text or "misaligned address" in text:
            self.broke_context = True
        status = "compile_error" if (kind in compile_markers or any(m in text[:200] for m in compile_markers[:2])
                                     or (where.startswith("importing") and kind != "RuntimeError")) else "runtime_error"
        return status, f"{where}: {_describe(e, self.workdir)}"

    def send_phase(self, phase: str) -> None:
        self.phase = phase
        self.w.send(event="phase", id=self.id, phase=phase)

    def sync(self) -> None:
        if self.w.device == "cuda":
            self.torch.cuda.synchronize()

    def scrub(self, tensors: list, protect: list = ()) -> None:
        """Fill the memory of outputs about to be freed with 0xFF (NaN), so no later allocation reads an answer;
        storages shared with `protect` are left alone."""
        torch = self.torch
        kept = {t.untyped_storage().data_ptr() for t in protect if isinstance(t, torch.Tensor)}
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.numel() and t.untyped_storage().data_ptr() not in kept:
                t.untyped_storage().fill_(255)

    def held_tensors(self, model) -> list:
        """Tensors a model holds on to: parameters, buffers, attributes and its module's globals."""
        torch = self.torch
        found = [*model.parameters(), *model.buffers()]
        module = sys.modules.get(type(model).__module__)
        for value in [*vars(model).values(), *(vars(module).values() if module else [])]:
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
            found += [t for t in items if isinstance(t, torch.Tensor)]
        return found

    def poison(self) -> None:
        """Fill the allocator's free blocks with 0xFF (NaN as floats), so that an output that was never
        written reads as NaN instead of as a stale, correct answer left by the reference."""
        torch = self.torch
        if self.w.device == "cuda":
            sizes = sorted((b["size"] for seg in torch.cuda.memory_snapshot() for b in seg["blocks"]
                            if b["state"] == "inactive"), reverse=True)
            held = [torch.empty(s, dtype=torch.uint8, device="cuda").fill_(255) for s in sizes]
            torch.cuda.synchronize()
        else:
            # glibc hands a freed block of the same size straight back out: hold one block for every reference
            # output freed so far in this job (seen: the pre-run's copy of trial 0's answer leaking to trial 0),
            # then a ladder of small sizes, all at once, then free them poisoned.
            sizes = self.freed_sizes + [1 << k for k in range(6, 17)]
            held = [torch.empty(s, dtype=torch.uint8).fill_(255) for s in sizes]
        del held

    def cleanup(self) -> None:
        for name in self.modules:
            sys.modules.pop(name, None)
        gc.collect()
        # Poison before memory goes back: cudaMalloc and malloc hand out stale contents, and the next job may
        # run the same problem with the same seeds.
        self.poison()
        if self.w.device == "cuda":
            self.torch.cuda.empty_cache()


def _clone(values: list) -> list:
    import torch
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


def _same(a, b) -> bool:
    import torch
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        return bool(torch.equal(torch.nan_to_num(a, nan=0.0), torch.nan_to_num(b, nan=0.0)))
    return bool(torch.equal(a, b))


def _overlaps(a, b) -> bool:
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    a0, b0 = a.untyped_storage().data_ptr(), b.untyped_storage().data_ptr()
    return a0 < b0 + b.untyped_storage().nbytes() and b0 < a0 + a.untyped_storage().nbytes()


def _same_parameters(m1, m2) -> bool:
    import torch
    s1, s2 = m1.state_dict(), m2.state_dict()
    return s1.keys() == s2.keys() and all(s1[k].shape == s2[k].shape and torch.equal(s1[k], s2[k]) for k in s1)


def _as_list(x) -> list:
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _nbytes(x) -> int:
    import torch
    return x.numel() * x.element_size() if isinstance(x, torch.Tensor) else 0


def _int_constants(problem) -> dict:
    return {k: v for k, v in vars(problem).items()
            if isinstance(v, int) and not isinstance(v, bool) and not k.startswith("_")}


def _describe(e: BaseException, workdir: Path | None = None) -> str:
    """The exception in a few lines, with the candidate's own line where the traceback passes through it."""
    text = str(e).strip()
    lines = text.splitlines()
    if len(lines) > 25:
        lines = lines[:10] + ["..."] + lines[-12:]
    where = ""
    if workdir is not None:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(str(workdir))]
        if frames:
            f = frames[-1]
            where = f" (at {Path(f.filename).name}:{f.lineno}: {(f.line or '').strip()})"
    return f"{type(e).__name__}: " + "\n".join(lines) + where


if __name__ == "__main__":
    main()
