"""A generated kernel file imported as a module, and what it is called with on a device: the inputs at a shape
and the captured tensors its mods read. --tune (tune.py) and --bench (versus_flex.py) time it so."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from .captures import find_tensors, rebind
from .spec import AttentionSpec, Shape


def load_kernel_module(path: Path):
    """Import a generated kernel file (Triton reads kernel source through inspect, so it must be a file)."""
    name = f"ks_generated_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def gpu_captures(spec: AttentionSpec, module, shape: Shape, device: str = "cuda") -> dict:
    """The captured tensors a generated kernel module needs, for this shape, on the device. The places the mods
    read them from (closure cells, globals) are pointed at the same device tensors, so that FlexAttention, which
    runs the mods as they are, sees them too."""
    spec.captures(shape)  # size-dependent globals (make_captures) for this shape
    found = {item.name: item for item in find_tensors(spec.score_mod, spec.mask_mod)}
    selected = [found[name] for name in module.CAPTURES]
    tensors = {item.name: item.tensor.to(device) for item in selected}
    rebind(selected, tensors)
    return tensors


def torch_dtype(shape: Shape):
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[shape.dtype]


def make_inputs(shape: Shape, device: str, seed: int = 0):
    dtype = torch_dtype(shape)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(shape.batch, shape.heads, shape.q_len, shape.head_dim, generator=generator)
    k = torch.randn(shape.batch, shape.n_kv_heads, shape.kv_len, shape.head_dim, generator=generator)
    v = torch.randn(shape.batch, shape.n_kv_heads, shape.kv_len, shape.head_dim, generator=generator)
    return [t.to(device=device, dtype=dtype) for t in (q, k, v)]
