"""--bench: our kernel beside FlexAttention and SDPA, same inputs, same run; medians and effective TFLOP/s."""
from __future__ import annotations

from pathlib import Path

from .spec import AttentionSpec


def bench_spec(spec: AttentionSpec, kernel_path: Path, progress=print, autotune_flex: bool = False) -> list[dict]:
    import torch
    import torch.nn.functional as F
    import triton.testing
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from .workflow import gpu_captures, load_kernel_module, make_inputs

    module = load_kernel_module(kernel_path)
    rows = []
    flex_default = torch.compile(flex_attention)
    flex_tuned = torch.compile(flex_attention, mode="max-autotune-no-cudagraphs") if autotune_flex else None
    for shape in spec.shapes:
        q, k, v = make_inputs(shape, "cuda")
        captures = gpu_captures(spec, module, shape)
        vars(spec.module).update(captures)  # the mods, as FlexAttention traces them, read the GPU tensors
        config = module.pick_config(shape.head_dim, q.dtype, q.device)
        index = module.build_block_index(shape.batch, shape.heads, shape.q_len, shape.kv_len, config["BLOCK_M"],
                                         config["BLOCK_N"], q.device, captures)
        density = mask_density(module, shape, captures)
        flops = 4 * shape.batch * shape.heads * shape.q_len * shape.kv_len * shape.head_dim * density

        def timed(fn):
            return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")

        row = {"spec": spec.name, "shape": shape.label(), "density": round(density, 4)}
        row["ours_ms"] = timed(lambda: module.attention(q, k, v, config=config, block_index=index, **captures))
        block_mask = create_block_mask(spec.mask_mod, None, None, shape.q_len, shape.kv_len) if spec.mask_mod else None
        gqa = shape.n_kv_heads != shape.heads
        flex_args = dict(score_mod=spec.score_mod, block_mask=block_mask, enable_gqa=gqa)
        row["flex_ms"] = timed(lambda: flex_default(q, k, v, **flex_args))
        if flex_tuned is not None:
            row["flex_autotune_ms"] = timed(lambda: flex_tuned(q, k, v, **flex_args))
        causal = _is_causal(module, captures) if spec.mask_mod else False
        if spec.score_mod is None and (spec.mask_mod is None or causal):
            for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
                try:
                    with sdpa_kernel(backend):
                        row[f"sdpa_{name}_ms"] = timed(lambda: F.scaled_dot_product_attention(
                            q, k, v, is_causal=causal, enable_gqa=gqa))
                except Exception as e:
                    row[f"sdpa_{name}_ms"] = f"unavailable: {type(e).__name__}"
        for key in [k for k in row if k.endswith("_ms") and isinstance(row[k], float)]:
            row[key.replace("_ms", "_tflops")] = flops / (row[key] * 1e-3) / 1e12
        for key in [k for k in row if k.endswith("_ms") and k != "ours_ms" and isinstance(row[k], float)]:
            row[f"ours_vs_{key[:-3]}"] = row[key] / row["ours_ms"]
        progress("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        rows.append(row)
        del q, k, v, index, block_mask
        torch.cuda.empty_cache()
    return rows


def mask_density(module, shape, captures) -> float:
    """Fraction of (query, key) pairs the mask keeps, counted exactly in chunks of query rows."""
    import torch
    kept, kv = 0, torch.arange(shape.kv_len, device="cuda", dtype=torch.int32).view(1, 1, 1, -1)
    b = torch.arange(shape.batch if module.MASK_USES_B else 1, device="cuda", dtype=torch.int32).view(-1, 1, 1, 1)
    h = torch.arange(shape.heads if module.MASK_USES_H else 1, device="cuda", dtype=torch.int32).view(1, -1, 1, 1)
    rows_per_chunk = max(1, (1 << 26) // (shape.kv_len * b.numel() * h.numel()))
    for start in range(0, shape.q_len, rows_per_chunk):
        rows = torch.arange(start, min(shape.q_len, start + rows_per_chunk), device="cuda",
                            dtype=torch.int32).view(1, 1, -1, 1)
        keep = torch.broadcast_to(module.mask_mod(b, h, rows, kv, **captures),
                                  (b.numel(), h.numel(), rows.shape[2], shape.kv_len))
        kept += int(keep.sum())
    return kept / (b.numel() * h.numel() * shape.q_len * shape.kv_len)


def _is_causal(module, captures) -> bool:
    import torch
    idx = torch.arange(2048, device="cuda", dtype=torch.int32)  # longer than the windows and prefixes
    keep = torch.broadcast_to(module.mask_mod(torch.zeros(1, 1, 1, 1, dtype=torch.int32, device="cuda"),
                                              torch.zeros(1, 1, 1, 1, dtype=torch.int32, device="cuda"),
                                              idx.view(1, 1, -1, 1), idx.view(1, 1, 1, -1), **captures), (1, 1, 2048, 2048))
    return bool(torch.equal(keep[0, 0], torch.tril(torch.ones(2048, 2048, dtype=torch.bool, device="cuda"))))
