"""--bench: our kernel beside FlexAttention and SDPA, same inputs, same run: forward and forward+backward, medians
with their 20-80 % spread, effective TFLOP/s, and every output and gradient checked against a float32 reference."""
from __future__ import annotations

from pathlib import Path

from .kernel_module import gpu_captures, load_kernel_module, make_inputs
from .reference import reference_attention
from .spec import AttentionSpec, Shape

QUANTILES = [0.5, 0.2, 0.8]  # median, then the spread reported beside it
BACKWARD_FLOP_RATIO = 2.5  # FlashAttention's convention: the backward does 2.5x the forward's matmul work


def bench_spec(spec: AttentionSpec, kernel_path: Path, progress=print, autotune_flex: bool = False) -> list[dict]:
    """Every shape of the spec (the CLI's --bench)."""
    import torch

    module = load_kernel_module(kernel_path)
    flex = flex_functions(autotune_flex)
    rows = []
    for shape in spec.shapes:
        rows.append(bench_shape(spec, module, shape, flex, progress=progress))
        torch.cuda.empty_cache()
    return rows


def flex_functions(autotune: bool) -> dict:
    """name -> compiled flex_attention. dynamic=False: one kernel per shape, as a user with fixed shapes gets."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention
    # one compiled graph per (mods, shape): the default limit of 8 would fall back to eager after 8
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 512)
    torch._dynamo.config.accumulated_cache_size_limit = max(torch._dynamo.config.accumulated_cache_size_limit, 4096)
    flex = {"flex": torch.compile(flex_attention, dynamic=False)}
    if autotune:
        flex["flex_autotune"] = torch.compile(flex_attention, dynamic=False, mode="max-autotune-no-cudagraphs")
    return flex


def bench_shape(spec: AttentionSpec, module, shape: Shape, flex: dict, backward: bool = True, check: bool = True,
                progress=print, device: str = "cuda") -> dict:
    """One row: times (ms: median, p20, p80) and TFLOP/s of ours, each Flex in `flex`, and SDPA where it applies;
    with `check`, the largest output and gradient errors of ours and of Flex against the float32 reference."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask

    q, k, v = make_inputs(shape, device)
    grad_out = torch.randn_like(q)
    captures = gpu_captures(spec, module, shape, device)  # the mods, as FlexAttention runs them, read these too
    config = module.pick_config(shape.q_len, shape.kv_len, shape.head_dim, q.dtype, q.device)
    index = module.build_block_index(shape.batch, shape.heads, shape.q_len, shape.kv_len, config["BLOCK_M"],
                                     config["BLOCK_N"], q.device, captures)
    backward_config = module.pick_backward_config(shape.q_len, shape.kv_len, shape.head_dim, q.dtype, q.device)
    backward_index = module.build_backward_index(shape.batch, shape.heads, shape.q_len, shape.kv_len,
                                                 backward_config, q.device, captures)
    density = mask_density(module, shape, captures, device) if spec.mask_mod else 1.0
    flops = 4 * shape.batch * shape.heads * shape.q_len * shape.kv_len * shape.head_dim * density
    gqa = shape.n_kv_heads != shape.heads
    row = {"spec": spec.name, "shape": shape.label(), "density": round(density, 4), "config": config,
           "backward_config": backward_config}

    def ours(a, b, c):
        return module.attention(a, b, c, config=config, block_index=index, backward_config=backward_config,
                                backward_index=backward_index, **captures)

    def ours_default(a, b, c):  # as a training step calls it: block indexes built on its first call, then kept
        return module.attention(a, b, c, **captures)

    module.BLOCK_INDEXES.clear()  # measured first, so that its indexes are its own, not the prebuilt ones
    impls = {"ours_default": ours_default, "ours": ours}
    if spec.mask_mod:
        block_mask = create_block_mask(spec.mask_mod, shape.batch if module.MASK_USES_B else None,
                                       shape.heads if module.MASK_USES_H else None, shape.q_len, shape.kv_len,
                                       device=device)
    else:
        block_mask = None
    for name, fn in flex.items():
        impls[name] = (lambda f: lambda a, b, c: f(a, b, c, score_mod=spec.score_mod, block_mask=block_mask,
                                                    enable_gqa=gqa))(fn)
    causal = _is_causal(module, captures, min(shape.q_len, shape.kv_len), device) if spec.mask_mod else False
    if spec.score_mod is None and (spec.mask_mod is None or causal) and device == "cuda":
        for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_flash", SDPBackend.FLASH_ATTENTION)):
            impls[name] = (lambda be: lambda a, b, c: _sdpa(F, sdpa_kernel, be, a, b, c, causal, gqa))(backend)
    reference = _reference(spec, q, k, v, grad_out, backward) if check else None
    for name, fn in impls.items():
        try:
            _measure(row, name, fn, q, k, v, grad_out, flops, backward, reference)
        except Exception as e:  # an SDPA backend that does not take this shape, Flex out of shared memory, ...
            row[f"{name}_failed"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    for kind in ("fwd", "fwdbwd"):
        for name in [n for n in impls if n != "ours" and f"ours_{kind}_ms" in row and f"{n}_{kind}_ms" in row]:
            row[f"ours_vs_{name}_{kind}"] = row[f"{name}_{kind}_ms"][0] / row[f"ours_{kind}_ms"][0]
        for name in [n for n in impls if n.startswith("flex") and f"ours_default_{kind}_ms" in row
                     and f"{n}_{kind}_ms" in row]:
            row[f"ours_default_vs_{name}_{kind}"] = row[f"{name}_{kind}_ms"][0] / row[f"ours_default_{kind}_ms"][0]
    progress("  " + _line(row))
    return row


def _timed(fn, warmup, grad_to_none=None):
    """[median, p20, p80] ms: triton's do_bench on a GPU; one call's wall time elsewhere (the CPU smoke run)."""
    import time

    import torch
    import triton.testing
    if torch.cuda.is_available():
        return triton.testing.do_bench(fn, warmup=warmup, rep=100, quantiles=QUANTILES, grad_to_none=grad_to_none)
    for t in grad_to_none or []:
        t.grad = None
    start = time.perf_counter()
    fn()
    return [(time.perf_counter() - start) * 1e3] * 3


def _measure(out, name, fn, q, k, v, grad_out, flops, backward, reference) -> None:
    """Adds to `out` as it goes: a backward that fails leaves the forward's figures in."""
    import torch
    with torch.no_grad():
        result = fn(q, k, v)
        out[f"{name}_fwd_ms"] = _timed(lambda: fn(q, k, v), 25)
    out[f"{name}_fwd_tflops"] = flops / (out[f"{name}_fwd_ms"][0] * 1e-3) / 1e12
    if reference is not None:
        out[f"{name}_error"] = _errors(result, None, reference)
    if backward:
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
        result = fn(*leaves)
        result.backward(grad_out)
        if reference is not None:
            out[f"{name}_error"] = _errors(result, [t.grad for t in leaves], reference)

        def step():
            fn(*leaves).backward(grad_out)

        out[f"{name}_fwdbwd_ms"] = _timed(step, 10, grad_to_none=leaves)
        out[f"{name}_fwdbwd_tflops"] = flops * (1 + BACKWARD_FLOP_RATIO) / (out[f"{name}_fwdbwd_ms"][0] * 1e-3) / 1e12


def _reference(spec, q, k, v, grad_out, backward):
    """The float32 reference (autograd through the spec's own mods) on batch 0 and the query heads of kv head 0:
    every output and gradient element there depends on that slice only, and it fits in memory at S=16384."""
    group = q.shape[1] // k.shape[1]
    sliced = [t[:1, :n].float().detach().requires_grad_(backward) for t, n in ((q, group), (k, 1), (v, 1))]
    out = reference_attention(*sliced, spec.score_mod, spec.mask_mod)
    grads = None
    if backward:
        out.backward(grad_out[:1, :group].float())
        grads = [t.grad if t.grad is not None else t.detach() * 0 for t in sliced]  # q, k unused: zero
    return out.detach(), grads, group


def _errors(result, grads, reference) -> dict:
    """max |ours - reference| / max |reference| on the reference's slice, per tensor."""
    ref_out, ref_grads, group = reference
    pairs = {"out": (result[:1, :group], ref_out)}
    if grads is not None and ref_grads is not None:
        pairs.update({n: (g[:1, :(group if n == "dq" else 1)], r)
                      for n, g, r in zip(("dq", "dk", "dv"), grads, ref_grads)})
    return {n: float(f"{((a.float() - b).abs().max() / b.abs().max().clamp_min(1e-30)).item():.3g}")
            for n, (a, b) in pairs.items()}


def _sdpa(F, sdpa_kernel, backend, q, k, v, causal, gqa):
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)


def _line(row: dict) -> str:
    parts = [row["spec"], row["shape"], f"density={row['density']}"]
    for key, value in row.items():
        if key.endswith("_tflops"):
            parts.append(f"{key[:-7]}={value:.0f}TF")
        elif key.startswith("ours_vs_"):
            parts.append(f"{key}={value:.2f}x")
        elif key.endswith("_error") or key.endswith("_failed"):
            parts.append(f"{key}={value}")
    return " ".join(parts)


def mask_density(module, shape, captures, device="cuda") -> float:
    """Fraction of (query, key) pairs the mask keeps, counted exactly in chunks of query rows."""
    import torch
    kept, kv = 0, torch.arange(shape.kv_len, device=device, dtype=torch.int32).view(1, 1, 1, -1)
    b = torch.arange(shape.batch if module.MASK_USES_B else 1, device=device, dtype=torch.int32).view(-1, 1, 1, 1)
    h = torch.arange(shape.heads if module.MASK_USES_H else 1, device=device, dtype=torch.int32).view(1, -1, 1, 1)
    rows_per_chunk = max(1, (1 << 26) // (shape.kv_len * b.numel() * h.numel()))
    for start in range(0, shape.q_len, rows_per_chunk):
        rows = torch.arange(start, min(shape.q_len, start + rows_per_chunk), device=device,
                            dtype=torch.int32).view(1, 1, -1, 1)
        keep = torch.broadcast_to(module.mask_mod(b, h, rows, kv, **captures),
                                  (b.numel(), h.numel(), rows.shape[2], shape.kv_len))
        kept += int(keep.sum())
    return kept / (b.numel() * h.numel() * shape.q_len * shape.kv_len)


def _is_causal(module, captures, length, device="cuda") -> bool:
    import torch
    n = min(2048, length)  # longer than the windows and prefixes; in range for the captured tensors
    idx = torch.arange(n, device=device, dtype=torch.int32)
    zero = torch.zeros(1, 1, 1, 1, dtype=torch.int32, device=device)
    keep = torch.broadcast_to(module.mask_mod(zero, zero, idx.view(1, 1, -1, 1), idx.view(1, 1, 1, -1), **captures),
                              (1, 1, n, n))
    return bool(torch.equal(keep[0, 0], torch.tril(torch.ones(n, n, dtype=torch.bool, device=device))))
