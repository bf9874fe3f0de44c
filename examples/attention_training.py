"""A tiny transformer block trained for a few steps with a generated attention kernel, its gradients checked at
every step against the same block on FlexAttention (on the CPU, where Flex has no backward, against the PyTorch
reference through the same mods). The kernel file is generated from a spec, imported, and used as a module:

    python examples/attention_training.py [--spec examples/attention/alibi_causal.py] [--device cuda] [--compile]

--compile trains the block under torch.compile(fullgraph=True): the generated attention is a custom operator, so
the whole block is one graph. On the CPU the kernels run in Triton's interpreter (set here). Exit 0 when every
gradient of every step is within the tolerance of kernelsearch.attention.reference.TOLERANCE.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch  # imports no triton: TRITON_INTERPRET may still be set in main()
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]


class Block(nn.Module):
    """Pre-norm attention and MLP with residuals, around any attention(q, k, v) -> [B, H, S, D]."""

    def __init__(self, dim: int, heads: int, attention):
        super().__init__()
        self.heads, self.attention = heads, attention  # a module (the generated Attention) or a function
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = self.attention(q, k, v).transpose(1, 2).reshape(batch, length, dim)
        x = x + self.proj(attended)
        return x + self.mlp(self.norm2(x))


def train(spec_path: Path, device: str = "cpu", steps: int = 3, compile_block: bool = False, length: int = 48,
          head_dim: int = 16, batch: int = 2) -> list[dict]:
    """Per step, the largest gradient error over the block's parameters (scaled to the reference gradient's largest
    value) and the tolerance it is held to. Both blocks start from the same weights and take the same SGD steps."""
    from kernelsearch.attention.generate import generate
    from kernelsearch.attention.kernel_module import gpu_captures, load_kernel_module
    from kernelsearch.attention.reference import TOLERANCE, reference_attention
    from kernelsearch.attention.spec import Shape, load_spec

    spec = load_spec(spec_path)
    heads = (spec.test_shapes or spec.shapes)[0].heads  # captured per-head tensors (ALiBi's slopes) fix it
    dtype = "fp32"  # the interpreter gets bf16 wrong; and the whole block's gradients in bf16 differ by its rounding
    shape = Shape(batch=batch, heads=heads, q_len=length, kv_len=length, head_dim=head_dim, dtype=dtype)
    spec.test_shapes = spec.shapes = [shape]
    kernel_path = Path(tempfile.mkdtemp(prefix="ks-train-")) / f"{spec.name}_attention.py"
    kernel_path.write_text(generate(spec).source)
    kernel = load_kernel_module(kernel_path)
    captures = gpu_captures(spec, kernel, shape, device)  # the mods read the same device tensors, for Flex too
    reference = _flex(spec, shape, device) if device == "cuda" else (
        lambda q, k, v: reference_attention(q, k, v, spec.score_mod, spec.mask_mod))
    blocks = []
    for attention in (kernel.Attention(*[captures[name] for name in kernel.CAPTURES]), reference):
        torch.manual_seed(0)  # the same weights in both
        blocks.append(Block(heads * head_dim, heads, attention))
    ours, theirs = blocks
    ours.to(device), theirs.to(device)
    step_ours = torch.compile(ours, fullgraph=True) if compile_block else ours
    optimizers = [torch.optim.SGD(model.parameters(), lr=0.1) for model in (ours, theirs)]
    generator = torch.Generator().manual_seed(0)
    report = []
    for step in range(steps):
        x = torch.randn(batch, length, heads * head_dim, generator=generator).to(device)
        target = torch.randn(x.shape, generator=generator).to(device)
        for model, optimizer in zip((step_ours, theirs), optimizers):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x).float(), target.float()).backward()
        worst = max(_error(a.grad, b.grad) for a, b in zip(ours.parameters(), theirs.parameters()))
        report.append({"step": step, "error": worst, "tolerance": TOLERANCE[dtype]})
        for optimizer in optimizers:
            optimizer.step()
    return report


def _flex(spec, shape, device):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    block_mask = create_block_mask(spec.mask_mod, None, None, shape.q_len, shape.kv_len, device=device) \
        if spec.mask_mod else None
    return lambda q, k, v: flex_attention(q, k, v, score_mod=spec.score_mod, block_mask=block_mask)


def _error(mine, theirs) -> float:
    return ((mine.float() - theirs.float()).abs().max() / theirs.float().abs().max().clamp_min(1e-30)).item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "examples" / "attention" / "alibi_causal.py")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="(default: cpu)")
    parser.add_argument("--steps", type=int, default=3, help="(default: 3)")
    parser.add_argument("--compile", action="store_true", help="torch.compile(fullgraph=True) the block")
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    sys.path.insert(0, str(ROOT / "src"))
    report = train(args.spec, args.device, args.steps, args.compile)
    for row in report:
        print(f"step {row['step']}: largest gradient error {row['error']:.2e} (tolerance {row['tolerance']:.0e})")
    return 0 if all(row["error"] <= row["tolerance"] for row in report) else 1


if __name__ == "__main__":
    sys.exit(main())
