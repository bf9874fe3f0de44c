"""Run by tests/test_attention_backward.py in a subprocess with TRITON_INTERPRET=1: for each spec and shape,
generate the kernel, run its forward and fused backward on random inputs, and print the largest error of the
output and of each gradient against the float32 PyTorch reference (autograd through the spec's own mods), scaled
to the reference's largest value. One process for every spec: importing torch and triton costs seconds.

    python attention_grad_check.py WORK_DIR '[["SPEC.py", [{"batch": 1, "heads": 2, ..., "dtype": "fp16"}]], ...]'

A case may also name the forward's "config" and the backward's "backward_config" (block sizes, "tma", "ws").
"""
import json
import sys
from pathlib import Path

import torch

from kernelsearch.attention.generate import generate
from kernelsearch.attention.reference import reference_attention
from kernelsearch.attention.spec import Shape, load_spec
from kernelsearch.attention.kernel_module import gpu_captures, load_kernel_module, make_inputs, torch_dtype


def check(spec, module, shape: Shape, configs: dict, seed: int = 0) -> dict:
    """`configs`: the forward's `config` and the backward's `backward_config`, where the case names them."""
    captures = gpu_captures(spec, module, shape, device="cpu")
    q, k, v = make_inputs(shape, "cpu", seed)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(seed + 1)).to(q.dtype)
    for config in configs.values():  # a config asking for descriptors must get them, or the case tests nothing
        assert module._use_tma(config, q, k, v, grad_out) == bool(config.get("tma"))
    ours = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = module.attention(*ours, **configs, **captures)
    out.backward(grad_out)
    exact = [t.float().requires_grad_(True) for t in (q, k, v)]
    reference = reference_attention(*exact, spec.score_mod, spec.mask_mod)
    reference.backward(grad_out.float())
    errors = {"out": _error(out, reference)}
    for name, mine, theirs in zip(("dq", "dk", "dv"), ours, exact):
        assert mine.grad.dtype == mine.dtype and mine.grad.shape == mine.shape
        # a score_mod that ignores the score leaves q and k out of the reference's graph: their gradient is zero
        errors[name] = _error(mine.grad, theirs.grad if theirs.grad is not None else torch.zeros_like(theirs))
    return {"shape": shape.label(), **errors}


def _error(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |mine - theirs| / max |theirs|: one number per tensor, comparable across dtypes and shapes."""
    if not torch.isfinite(mine.float()).all():
        return float("inf")
    scale = theirs.abs().max().item() or 1.0  # an all-zero reference: the absolute error
    return (mine.float() - theirs.float()).abs().max().item() / scale


def main() -> None:
    work_dir, jobs = Path(sys.argv[1]), json.loads(sys.argv[2])
    results = []
    for spec_path, cases in jobs:
        spec = load_spec(spec_path)
        for case in cases:
            configs = {name: case.pop(name) for name in ("config", "backward_config") if name in case}
            shape = Shape(**case)
            assert torch_dtype(shape) in (torch.float32, torch.float16)  # the interpreter gets bf16 wrong
            spec.test_shapes = [shape]  # the shape the kernel is generated (and make_captures run) for
            path = work_dir / f"{spec.name}_{len(results)}_attention.py"
            path.write_text(generate(spec).source)
            results.append({"spec": spec.name, **check(spec, load_kernel_module(path), shape, configs)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
