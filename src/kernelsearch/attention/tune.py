"""--tune: time block sizes, warps and stages on the GPU for each (head_dim, dtype) and keep the fastest."""
from __future__ import annotations

import json
from pathlib import Path

from .spec import AttentionSpec

# (BLOCK_M, BLOCK_N, num_warps, num_stages): around the Triton tutorial's Hopper settings. 8 configs keep a
# spec's tuning under a minute; each is built and timed on the spec's first shape of each head_dim/dtype.
CANDIDATES = [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 4, 3), (128, 128, 8, 2), (128, 64, 8, 4),
              (64, 64, 4, 3), (64, 128, 4, 3), (128, 32, 4, 3)]


def tune_configs(spec: AttentionSpec, source: str, out_dir: Path, progress=print) -> dict:
    import torch
    import triton.testing

    from .workflow import gpu_captures, load_kernel_module, make_inputs, torch_dtype

    path = out_dir / f"_{spec.name}_tuning_kernel.py"
    path.write_text(source)
    module = load_kernel_module(path)
    configs: dict = {}
    timings: dict = {}
    for shape in spec.shapes:
        key = module.config_key(shape.head_dim, torch_dtype(shape))
        if key in configs:
            continue
        q, k, v = make_inputs(shape, "cuda")
        captures = gpu_captures(spec, module, shape)
        best = None
        for bm, bn, warps, stages in CANDIDATES:
            config = {"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": warps, "num_stages": stages}
            try:
                index = module.build_block_index(shape.batch, shape.heads, shape.q_len, shape.kv_len, bm, bn,
                                                 q.device, captures)
                ms = triton.testing.do_bench(lambda: module.attention(q, k, v, config=config, block_index=index,
                                                                      **captures), warmup=25, rep=100,
                                             return_mode="median")
            except Exception as e:  # e.g. out of shared memory for this block shape
                progress(f"  tune {key} {config}: skipped ({type(e).__name__})")
                continue
            timings.setdefault(key, []).append({**config, "ms": ms})
            if best is None or ms < best[0]:
                best = (ms, config)
        if best:
            configs[key] = best[1]
            progress(f"  tuned {key} on {shape.label()}: {best[1]} at {best[0]:.3f} ms")
        del q, k, v
        torch.cuda.empty_cache()
    (out_dir / f"{spec.name}_tuning.json").write_text(json.dumps({"best": configs, "timings": timings}, indent=2))
    path.unlink()
    return configs
