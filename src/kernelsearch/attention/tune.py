"""--tune: time forward and backward block sizes, warps and stages on the GPU per shape, and keep the fastest."""
from __future__ import annotations

import json
from pathlib import Path

from .kernel_module import gpu_captures, load_kernel_module, make_inputs
from .spec import AttentionSpec

# Forward (BLOCK_M, BLOCK_N, num_warps, num_stages): around the Triton tutorial's Hopper settings, plus larger
# kv blocks for long rows. The issue #5 tuner's 8 configs lost 3-10 % to Flex's max-autotune; these 14 (each in
# every way of LOADS the installed Triton has) take ~1 s each to build and time. The last two are for warp
# specialization: on the H100 (2026-12-05, relative position S=4096 D=128) it took 128-row tiles at 4 warps from
# 3.03 to 1.16 ms (128x128, 2 stages) and from 2.04 to 1.20 ms (128x64, 3 stages), against 1.15 ms for the best.
FORWARD_CANDIDATES = [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 4, 3), (128, 128, 8, 2), (128, 64, 8, 4),
                      (64, 64, 4, 3), (64, 128, 4, 3), (128, 32, 4, 3), (128, 128, 4, 2), (64, 64, 4, 4),
                      (256, 64, 8, 2), (128, 128, 8, 4), (128, 128, 4, 3), (128, 64, 4, 2)]
# Backward (BLOCK_M1, BLOCK_N1, BLOCK_M2, BLOCK_N2, num_warps, num_stages): the dK/dV kernel holds a BLOCK_N1-key
# tile of K, V, dK and dV (fp32), so its kv blocks are the large ones; dQ mirrors it. On the H100 (2026-12-05)
# 3 stages beat 2 by 9-15 % and 4 warps on 128-key tiles ran 3x slower: the last five explore around the winners.
BACKWARD_CANDIDATES = [(64, 128, 128, 64, 8, 2), (32, 128, 128, 32, 4, 2), (64, 64, 64, 64, 4, 3),
                       (64, 128, 128, 64, 8, 3), (32, 64, 64, 32, 4, 3), (64, 128, 128, 64, 4, 2),
                       (64, 128, 128, 64, 8, 4), (32, 128, 128, 32, 8, 3), (64, 64, 64, 64, 8, 3),
                       (32, 64, 64, 32, 4, 4), (64, 64, 64, 64, 4, 4)]

# How each candidate loads its tiles: pointers; tensor descriptors (TMA on Hopper); descriptors with the loops over
# full blocks warp-specialized by Triton's compiler (the loads issued by warps of their own), where it can do that
# for the GPU at hand (where it cannot build a config, the config is skipped). Three ways: ~3x the tuning time.
LOADS = [{"tma": False, "ws": False}, {"tma": True, "ws": False}, {"tma": True, "ws": True}]
# The forward's winner is also timed on a persistent grid of this many programs per streaming multiprocessor: one
# where its tiles fill an SM's shared memory (128x128 with 3 stages at D=128), two where they leave room.
PERSISTENT_PROGRAMS = (1, 2)


def tune_configs(spec: AttentionSpec, source: str, out_dir: Path, progress=print, backward: bool = True):
    """(forward configs, backward configs), each keyed by the kernel's config_key for every shape of the spec."""
    import torch

    path = out_dir / f"_{spec.name}_tuning_kernel.py"
    path.write_text(source)
    module = load_kernel_module(path)
    loads = _loads(module)
    forward, backward_configs, timings = {}, {}, {}
    for shape in spec.shapes:
        _tune_shape(spec, module, shape, loads, backward, forward, backward_configs, timings, progress)
        torch.cuda.empty_cache()
    forward = {k: v for k, v in forward.items() if v}
    backward_configs = {k: v for k, v in backward_configs.items() if v}
    (out_dir / f"{spec.name}_tuning.json").write_text(json.dumps(
        {"forward": forward, "backward": backward_configs, "timings": timings}, indent=2))
    path.unlink()
    return forward, backward_configs


def _tune_shape(spec, module, shape, loads, backward, forward, backward_configs, timings, progress) -> None:
    """Adds this shape's fastest forward (and backward) config to `forward` (`backward_configs`)."""
    q, k, v = make_inputs(shape, "cuda")
    key = module.config_key(shape.q_len, shape.kv_len, shape.head_dim, q.dtype)
    captures = gpu_captures(spec, module, shape)
    configs = [{"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": w, "num_stages": s, **how}
               for bm, bn, w, s in FORWARD_CANDIDATES for how in loads]
    def forward_at(config):
        return forward_call(module, q, k, v, config, captures)

    forward[key] = _fastest(configs, forward_at, timings, key, progress)
    if forward[key]:  # then the winner on a persistent grid, timed again beside it
        persistent = [{**forward[key], "persistent": n} for n in PERSISTENT_PROGRAMS]
        if forward[key].get("ws"):  # Triton 3.6 built neither persistent grid of causal's warp-specialized
            persistent += [{**c, "ws": False} for c in persistent]  # winner (H100, 2026-12-05): also without
        configs = [forward[key]] + persistent
        forward[key] = _fastest(configs, forward_at, timings, f"{key}-persistent", progress)
    if backward:
        backward_configs[key] = _fastest_backward(module, q, k, v, forward[key], captures, loads, timings, key,
                                                  progress)


def tune_backward(spec: AttentionSpec, path: Path, progress=print) -> dict:
    """The backward's configs alone, keyed by config_key for every shape of the spec, for the kernel file at `path`
    (its forward as it was generated: the saved forward the backward starts from)."""
    import torch

    module = load_kernel_module(path)
    loads = _loads(module)
    found, timings = {}, {}
    for shape in spec.shapes:
        q, k, v = make_inputs(shape, "cuda")
        key = module.config_key(shape.q_len, shape.kv_len, shape.head_dim, q.dtype)
        captures = gpu_captures(spec, module, shape)
        found[key] = _fastest_backward(module, q, k, v, None, captures, loads, timings, key, progress)
        del q, k, v
        torch.cuda.empty_cache()
    return {k: v for k, v in found.items() if v}


def _loads(module) -> list[dict]:
    """Descriptors map to TMA from Hopper on; older GPUs have no TMA: only pointer loads are tried there."""
    import torch
    hopper = torch.cuda.get_device_capability()[0] >= 9
    return LOADS if module.HAS_TENSOR_DESCRIPTORS and hopper else LOADS[:1]


def _fastest_backward(module, q, k, v, forward_config, captures, loads, timings, key, progress):
    configs = [{"BLOCK_M1": m1, "BLOCK_N1": n1, "BLOCK_M2": m2, "BLOCK_N2": n2, "num_warps": w, "num_stages": s,
                **how} for m1, n1, m2, n2, w, s in BACKWARD_CANDIDATES for how in loads]
    return _fastest(configs, lambda c: backward_call(module, q, k, v, forward_config, c, captures), timings,
                    f"{key}-backward", progress)


def forward_call(module, q, k, v, config, captures):
    """A no-argument call of the kernel's forward at this config (its block index built once, here)."""
    index = module.build_block_index(q.shape[0], q.shape[1], q.shape[2], k.shape[2], config["BLOCK_M"],
                                     config["BLOCK_N"], q.device, captures)
    return lambda: module.attention(q, k, v, config=config, block_index=index, **captures)


def backward_call(module, q, k, v, config, backward_config, captures):
    """A no-argument call of the backward kernels alone, on a saved forward (out, lse)."""
    import torch
    sm_scale = q.shape[-1] ** -0.5
    out, lse = module.attention(q, k, v, config=config, return_lse=True, **captures)  # config None: the default
    grad = torch.randn_like(out)
    index = module.build_backward_index(q.shape[0], q.shape[1], q.shape[2], k.shape[2], backward_config, q.device,
                                        captures)
    return lambda: module._backward(q, k, v, out, lse, grad, sm_scale, captures, backward_config, index)


def _fastest(configs, make_call, timings, key, progress):
    import triton.testing
    best = None
    for config in configs:
        try:
            ms = triton.testing.do_bench(make_call(config), warmup=10, rep=50, return_mode="median")
        except Exception as e:  # e.g. out of shared memory for this block shape
            progress(f"  tune {key} {config}: skipped ({type(e).__name__})")
            continue
        timings.setdefault(key, []).append({**config, "ms": ms})
        if best is None or ms < best[0]:
            best = (ms, config)
    if best:
        progress(f"  tuned {key}: {best[1]} at {best[0]:.3f} ms")
    return best[1] if best else None
