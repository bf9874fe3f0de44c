"""The measuring process behind `problem_info` and `profile`: the problem (and, for a profile, the candidate) runs
here, in a sandboxed process of its own (probe_runner.py), never in the MCP server. One JSON request on stdin; one
JSON answer on the process's original stdout, which is moved aside first, so that whatever the problem or the
candidate prints lands on stderr instead."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

from ..verify.errors import Outcome
from ..verify.harness.gpu_kernels import own_kernel_names
from ..verify.harness.modules import DTYPES

# The reference is timed on the CPU only when one call is cheap: eager fp32 matmul runs at ~180 GFLOP/s on the
# 2-core CI machine (4096^2 x 4096 in 0.75 s), so 2e11 FLOPs is about a second a call.
CPU_TIMING_FLOPS = 2e11
CPU_TIMING_BYTES = 2 * 2**30
CPU_TIMING_BUDGET_S = 1.0  # calls after the warm-up one, until this much time has passed...
CPU_TIMING_CALLS = (3, 50)  # ...but at least and at most this many


class ProbeError(Exception):
    """What kept the probe from measuring, in a line or two (becomes the tool's error)."""


def main() -> None:
    answer_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # prints of the problem or the candidate go to stderr, never into the answer
    request = json.loads(sys.stdin.read())
    try:
        answer = {"ok": True, **ACTIONS[request["action"]](request)}
    except ProbeError as e:
        answer = {"ok": False, "error": str(e)}
    except Exception as e:  # a probe bug or a problem that breaks in an unforeseen way: still one answer
        traceback.print_exc()
        answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    answer_stream.write(json.dumps(answer, default=str))
    answer_stream.close()


# ---- problem_info ------------------------------------------------------------------------------------------
def describe_problem(request: dict) -> dict:
    """Shapes, work and the reference's time for one problem on this process's device."""
    # torch (verify.worker.work_estimate imports it) loads after main() has set stdout aside, inside its try
    import torch

    from ..verify.worker.work_estimate import estimate_work

    problem = load_module(request["problem_source"], "problem")
    elements, flops = estimate_work(problem)
    answer = {"elements": elements, "bytes_fp32": 4 * elements, "flops": flops, **meta_shapes(problem)}
    device = request["device"]
    answer["device_name"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    if device == "cpu" and (flops > CPU_TIMING_FLOPS or 4 * elements > CPU_TIMING_BYTES):
        answer["reference"] = {"unavailable": f"not run on the CPU: {flops:.3g} FLOPs and {4 * elements / 2**30:.3g} "
                                              f"GiB per call (limits {CPU_TIMING_FLOPS:.3g} and "
                                              f"{CPU_TIMING_BYTES / 2**30:g} GiB); `set` shrinks it"}
    else:
        answer["reference"] = time_reference(problem, device, request.get("seed", 42))
    if device == "cuda":
        # imports torch: loaded inside main()'s try, as torch is
        from ..verify.harness.gpu_timing import roofline_floor_ms
        answer["roofline_floor_ms"] = roofline_floor_ms(flops, 4 * elements, "fp32", answer["device_name"])
    return answer


def meta_shapes(problem) -> dict:
    """The inputs' and outputs' shapes and dtypes, from a forward on the meta device (nothing allocated)."""
    import torch

    def describe(x):
        if isinstance(x, torch.Tensor):
            return {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", "")}
        return {"value": repr(x)[:100]}

    with torch.device("meta"):
        try:
            inputs = problem.get_inputs()
        except Exception as e:
            raise ProbeError(f"get_inputs() failed: {type(e).__name__}: {e}") from None
        shapes = {"inputs": [describe(x) for x in inputs], "outputs": None}
        try:
            with torch.no_grad():
                out = problem.Model(*problem.get_init_inputs())(*inputs)
            shapes["outputs"] = [describe(o) for o in (out if isinstance(out, (tuple, list)) else [out])]
        except Exception:
            pass  # some models cannot run on the meta device; their outputs stay unknown
    return shapes


def time_reference(problem, device: str, seed: int) -> dict:
    """The reference's median time per call: CUDA events (verify.harness.gpu_timing) on a GPU, the wall clock on the
    CPU."""
    # torch (verify.harness.calls imports it) loads after main() has set stdout aside, inside its try
    import torch

    from ..verify.harness.calls import Calls

    try:
        torch.manual_seed(seed)
        model = problem.Model(*problem.get_init_inputs()).to(device)
        inputs = Calls(torch, device, torch.float32, None, None).inputs(problem, seed)
        with torch.no_grad():
            if device == "cuda":
                # imports torch, as the lines above
                from ..verify.harness.gpu_timing import METHOD, summarize, time_interleaved
                times = time_interleaved({"reference": model}, [inputs])["reference"]
                return {**summarize(times), "method": METHOD}
            model(*inputs)  # the first call allocates and warms caches
            times, began = [], time.perf_counter()
            low, high = CPU_TIMING_CALLS
            while len(times) < low or (len(times) < high and time.perf_counter() - began < CPU_TIMING_BUDGET_S):
                start = time.perf_counter()
                model(*inputs)
                times.append(1e3 * (time.perf_counter() - start))
    except Outcome as e:
        return {"unavailable": e.message}
    except Exception as e:
        return {"unavailable": f"the reference failed here: {type(e).__name__}: {str(e)[:300]}"}
    return {"median_ms": statistics.median(times), "min_ms": min(times), "reps": len(times),
            "method": "wall clock, eager PyTorch on the CPU"}


# ---- profile (GPU) -----------------------------------------------------------------------------------------
def profile_candidate(request: dict) -> dict:
    """Each GPU kernel of one steady-state forward of the candidate, with its time; the forward's median time;
    and the roofline fraction: the least time the problem's FLOPs and bytes allow on this GPU, over that median."""
    # torch (verify.harness.calls and gpu_timing import it) loads after main() has set stdout aside, inside its try
    import torch
    from torch.profiler import ProfilerActivity, profile

    from ..verify.harness.calls import Calls
    from ..verify.harness.gpu_timing import roofline_floor_ms, summarize, time_interleaved, work_of_call

    seed, dtype_name = request.get("seed", 42), request["dtype"]
    dtype = getattr(torch, DTYPES[dtype_name])
    problem = load_module(request["problem_source"], "problem")
    candidate = load_module(request["candidate_source"], "candidate")
    init_inputs = problem.get_init_inputs()
    reference = build(problem.Model, init_inputs, seed, dtype, "Model")
    model = build(candidate.ModelNew, init_inputs, seed, dtype, "ModelNew")
    inputs = Calls(torch, "cuda", dtype, None, None).inputs(problem, seed)
    with torch.no_grad():
        try:
            # Not this call: it compiles and autotunes (dozens of trial launches), which no later call repeats.
            model(*inputs)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as profiler:
                model(*inputs)
                torch.cuda.synchronize()
            forward = summarize(time_interleaved({"candidate": model}, [inputs])["candidate"])
        except Exception as e:
            raise ProbeError(f"the candidate failed: {type(e).__name__}: {str(e)[:500]} (verify it first)") from None
    flops, moved = work_of_call(reference, inputs)
    kernels: dict[str, dict] = {}
    for event in profiler.events():
        if "CUDA" in str(event.device_type):
            entry = kernels.setdefault(event.name, {"name": event.name, "calls": 0, "ms": 0.0})
            entry["calls"] += 1
            entry["ms"] += event.time_range.elapsed_us() / 1e3
    own = own_kernel_names(request["candidate_source"])
    total = sum(k["ms"] for k in kernels.values())
    rows = sorted(kernels.values(), key=lambda k: -k["ms"])
    for row in rows:
        row["own"] = any(name in row["name"] for name in own)
        row["share"] = row["ms"] / total if total else None
    device_name = torch.cuda.get_device_name()
    floor = roofline_floor_ms(flops, moved, dtype_name, device_name)
    median = forward["median_ms"]
    return {"device_name": device_name, "kernels": rows, "kernel_total_ms": total, "forward": forward,
            "flops": flops, "bytes": moved, "roofline_floor_ms": floor,
            "roofline_fraction": floor / median if floor is not None and median > 0 else None}


def build(cls, init_inputs, seed: int, dtype, what: str):
    import torch
    torch.manual_seed(seed)  # reference and candidate start from the same parameters, as in the verifier
    try:
        return cls(*init_inputs).to(device="cuda", dtype=dtype)
    except Exception as e:
        raise ProbeError(f"{what}(*get_init_inputs()) failed: {type(e).__name__}: {str(e)[:300]}") from None


def load_module(source: str, kind: str):
    """Import source from a real file in this process's directory (Triton reads kernel source through inspect)."""
    path = Path.cwd() / f"{kind}.py"
    path.write_text(source)
    name = f"ks_probe_{kind}_{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ProbeError(f"the {kind} failed to load: {type(e).__name__}: {str(e)[:300]}") from None
    return module


ACTIONS = {"problem_info": describe_problem, "profile": profile_candidate}

if __name__ == "__main__":
    main()
