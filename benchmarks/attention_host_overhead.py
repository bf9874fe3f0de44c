"""Issue #27: where the host's time goes in a generated kernel's forward+backward step, on the GPU. On 2026-12-07
(H100, document mask, D=64) a default step took 1.41 ms of host time to issue against 0.60 ms of GPU work; the raw
kernels' path took 0.27 ms, a plain torch.autograd.Function around it 0.875 ms and the custom operator 1.10 ms.
This script times each path in one process (the default call now takes _EagerAttention in eager mode), with
autograd's device thread on and off (torch.autograd.set_multithreading_enabled), and the raw backward issued from
another thread; then (--profile) the host's operators of five default steps under torch.profiler, by self time.

    python3 benchmarks/attention_host_overhead.py [--specs document_mask,causal] [--json OUT.json] [--profile]

Each figure: host ms to issue one step (20 steps back to back, no sync between them) and wall ms per step.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kernelsearch.attention.generate import generate  # noqa: E402
from kernelsearch.attention.kernel_module import gpu_captures, load_kernel_module, make_inputs  # noqa: E402
from kernelsearch.attention.spec import load_spec  # noqa: E402

STEPS = 20


def host_and_wall(step) -> dict:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(STEPS):
        step()
    issued = time.perf_counter()
    torch.cuda.synchronize()
    ended = time.perf_counter()
    return {"host_ms": round((issued - began) * 1e3 / STEPS, 4), "wall_ms": round((ended - began) * 1e3 / STEPS, 4)}


def on_another_thread(step) -> dict:
    result = {}
    thread = threading.Thread(target=lambda: result.update(host_and_wall(step)))
    thread.start()
    thread.join()
    return result


def paths(spec, module, shape) -> dict:
    q, k, v = (t.requires_grad_(True) for t in make_inputs(shape, "cuda"))
    captures = gpu_captures(spec, module, shape, "cuda")
    grad = torch.randn_like(q)
    scale = shape.head_dim ** -0.5
    config = module.pick_config(shape.q_len, shape.kv_len, shape.head_dim, q.dtype, q.device)
    qd, kd, vd = q.detach(), k.detach(), v.detach()
    out, lse = module._forward(qd, kd, vd, scale, config, None, captures, True)

    class Plain(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, c):
            o, m = module._forward(a, b, c, scale, config, None, captures, True)
            ctx.save_for_backward(a, b, c, o, m)
            return o

        @staticmethod
        def backward(ctx, dout):
            a, b, c, o, m = ctx.saved_tensors
            return module._backward(a, b, c, o, m, dout, scale, captures, None, None)

    def raw_step():
        module._forward(qd, kd, vd, scale, config, None, captures, True)
        module._backward(qd, kd, vd, out, lse, grad, scale, captures, None, None)

    found = {"raw kernels' path": host_and_wall(raw_step),
             "raw backward from another thread": on_another_thread(
                 lambda: module._backward(qd, kd, vd, out, lse, grad, scale, captures, None, None)),
             "raw backward on this thread": host_and_wall(
                 lambda: module._backward(qd, kd, vd, out, lse, grad, scale, captures, None, None))}
    eager = module._eager
    for threaded in (True, False):
        with torch.autograd.set_multithreading_enabled(threaded):
            label = "device thread" if threaded else "calling thread"
            found[f"plain Function, {label}"] = host_and_wall(lambda: Plain.apply(q, k, v).backward(grad))
            found[f"default call (eager: _EagerAttention), {label}"] = host_and_wall(
                lambda: module.attention(q, k, v, **captures).backward(grad))
            module._eager = lambda *tensors: False  # as in a compiled graph: through the custom operators
            found[f"custom operator, {label}"] = host_and_wall(
                lambda: module.attention(q, k, v, **captures).backward(grad))
            module._eager = eager
    return found


def host_profile(module, spec, shape) -> str:
    """The host's operators (and autograd's nodes) of five default steps, by self CPU time: where the time that
    the kernels' raw path does not spend goes."""
    q, k, v = (t.requires_grad_(True) for t in make_inputs(shape, "cuda"))
    captures = gpu_captures(spec, module, shape, "cuda")
    grad = torch.randn_like(q)
    step = lambda: module.attention(q, k, v, **captures).backward(grad)  # noqa: E731
    host_and_wall(step)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    return profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default="document_mask,causal")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--json")
    parser.add_argument("--profile", action="store_true", help="and the host's operators of five default steps")
    args = parser.parse_args()
    configs = json.loads((ROOT / "benchmarks" / "attention_configs_h100.json").read_text())
    rows = {}
    for name in args.specs.split(","):
        spec = load_spec(ROOT / "examples" / "attention" / f"{name}.py")
        shape = next(s for s in spec.shapes if s.head_dim == args.head_dim)
        spec.shapes = [shape]
        tuned = configs.get(name, {})
        path = Path(f"/tmp/ks_host_{name}.py")
        path.write_text(generate(spec, tuned.get("forward"), tuned.get("backward")).source)
        module = load_kernel_module(path)
        rows[name] = paths(spec, module, dataclasses.replace(shape))
        for label, figures in rows[name].items():
            print(f"{name} {shape.label()}: {label}: host {figures['host_ms']} ms, wall {figures['wall_ms']} ms",
                  flush=True)
        if args.profile:
            print(f"{name} {shape.label()}: the default call's host operators, five steps\n"
                  + host_profile(module, spec, dataclasses.replace(shape)), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
