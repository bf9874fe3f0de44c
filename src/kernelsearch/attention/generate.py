"""Spec -> a standalone Triton attention file, plus KernelBench-format problem files to verify it with."""
from __future__ import annotations

import hashlib
import inspect
import pprint
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from . import captures as captures_module, reference
from .captures import find_tensors
from .spec import AttentionSpec, Shape
from .trace import Capture, TraceError, TracedMod, trace_mod

TEMPLATES = [Path(__file__).with_name("kernel_template.py.txt"), Path(__file__).with_name("kernel_backward.py.txt")]
LOG2E = "1.44269504"


@dataclass
class GeneratedKernel:
    source: str
    captures: list[Capture]
    score: TracedMod | None
    mask: TracedMod | None


def generate(spec: AttentionSpec, configs: dict | None = None, backward_configs: dict | None = None) -> GeneratedKernel:
    """Trace the mods and fill the kernel template. Raises TraceError naming any op it cannot translate."""
    if spec.shapes or spec.test_shapes:
        spec.captures((spec.test_shapes or spec.shapes)[0])  # size-dependent captures must exist to trace
    names = {id(found.tensor): found.name for found in find_tensors(spec.score_mod, spec.mask_mod)}
    score = trace_mod(spec.score_mod, "score", names) if spec.score_mod else None
    mask = trace_mod(spec.mask_mod, "mask", names) if spec.mask_mod else None
    captures: list[Capture] = []
    for traced in (score, mask):
        for capture in traced.captures if traced else []:
            if capture.name not in [c.name for c in captures]:
                captures.append(capture)
    names = [c.name for c in captures]
    params = "".join(f" {c.name}_ptr," + "".join(f" {c.name}_size{d}, {c.name}_stride{d},"
                                                  for d in range(c.tensor.ndim)) for c in captures)
    launch = "".join(f"captures[{c.name!r}], " + "".join(f"captures[{c.name!r}].shape[{d}], "
                                                          f"captures[{c.name!r}].stride({d}), "
                                                          for d in range(c.tensor.ndim)) for c in captures)
    source = Template("".join(path.read_text() for path in TEMPLATES)).substitute(
        title=f"{spec.name}: {spec.doc}" if spec.doc else spec.name,
        spec_name=Path(spec.path).name,
        capture_names=repr(names), score_is_scale=score is None,
        has_mask=mask is not None, mask_uses_b=bool(mask and "b" in mask.uses), mask_uses_h=bool(mask and "h" in mask.uses),
        configs=_literal(configs), backward_configs=_literal(backward_configs),
        capture_params=params, capture_args=params,
        score_code=_indent(_score_code(score), 4), mask_code=_indent(_mask_code(mask), 8),
        score_grad_code=_indent(_score_grad_code(score), 4),
        score_grad_dkdv=_grad_multiply(score, "dsT", "qkT", "offs_m[None, :], offs_n[:, None]", params),
        score_grad_dq=_grad_multiply(score, "ds", "qk", "offs_m[:, None], offs_n[None, :]", params),
        capture_params_host="".join(f", {n}" for n in names),
        mask_host=_indent(_mask_host(mask), 4),
        capture_kwargs_doc="".join(f", {n}={n}" for n in names),
        capture_kwargs=(", *, " + ", ".join(names)) if names else "",
        capture_list=", ".join(names),
        capture_positional_doc=", ".join(names),
        op_namespace="$op_namespace",
        capture_launch_args=launch,
    )
    # The operators' namespace names the spec and the source: two different kernels never share an operator, and the
    # same file imported twice registers the same one again.
    stem = re.sub(r"\W", "_", Path(spec.path).stem) or "spec"
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    source = source.replace("$op_namespace", f"kernelsearch_{stem}_{digest}")
    compile(source, "generated attention kernel", "exec")  # a template bug must never reach the user
    return GeneratedKernel(source=source, captures=captures, score=score, mask=mask)


def _literal(table: dict | None) -> str:
    """A config table as Python source (json would write the "tma" flags as false/true)."""
    return pprint.pformat(table or {}, width=116, sort_dicts=True)


def _score_code(score: TracedMod | None) -> list[str]:
    if score is None:
        return ["if SCALE:", f"    qk = qk * (sm_scale * {LOG2E})"]
    if score.additive_bias is not None:
        # exp2 form: one multiply-add per element instead of scaling twice
        body = [line for line in score.triton if not line.startswith(f"{score.result} =")]
        return body + [f"qk = qk * (sm_scale * {LOG2E}) + ({score.additive_bias}) * {LOG2E}"]
    return ["score = qk * sm_scale", *score.triton, f"qk = ({score.result}) * {LOG2E}"]


def _mask_code(mask: TracedMod | None) -> list[str]:
    if mask is None:  # never evaluated: without a mask every block is full
        return ["pass"]
    return [*mask.triton, f'qk = tl.where({mask.result}, qk, -float("inf"))']


def _score_grad_code(score: TracedMod | None) -> list[str]:
    """The body of _score_grad: the mod again (the compiler shares what the forward part computed), then its
    derivative."""
    if score is None or score.grad_result == "1.0":
        return ["return qk  # not called: the derivative is one"]
    result = score.grad_result or "tl.zeros_like(qk)"
    return ["score = qk * sm_scale", *score.triton, *score.grad, f"return {result} + tl.zeros_like(qk)"]


def _grad_multiply(score: TracedMod | None, ds: str, qk: str, indices: str, params: str) -> str:
    """The backward's line that carries the gradient through score_mod, or nothing when its derivative is one."""
    if score is None or score.grad_result == "1.0":
        return ""
    return f"    {ds} = {ds} * _score_grad({qk}, b, h, {indices}, sm_scale,{params})"


def _mask_host(mask: TracedMod | None) -> list[str]:
    if mask is None:
        return ["return torch.ones((), dtype=torch.bool, device=q_idx.device)"]
    return [*mask.torch, f"return ({mask.result}).bool()"]


def _indent(lines: list[str], spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in lines)


def problem_source(spec: AttentionSpec, shape: Shape, capture_names: list[str]) -> str:
    """A KernelBench problem whose Model is the PyTorch reference for this spec at this shape. The spec's own
    source comes first, so the mods and their captured tensors are exactly the user's."""
    reference_source = inspect.getsource(reference)
    captures_source = inspect.getsource(captures_module)
    kv_heads = shape.n_kv_heads
    return f'''{spec.source}

# ---- KernelBench problem generated by kernelsearch: the PyTorch reference for this spec ----
{reference_source}
{captures_source}

batch_size = {shape.batch}
heads = {shape.heads}
kv_heads = {kv_heads}
q_len = {shape.q_len}
kv_len = {shape.kv_len}
head_dim = {shape.head_dim}
_KS_CAPTURES = {capture_names!r}
_KS_SCORE_MOD = globals().get("score_mod")
_KS_MASK_MOD = globals().get("mask_mod")
if "make_captures" in globals():
    import types as _ks_types
    globals().update(make_captures(_ks_types.SimpleNamespace(
        batch={shape.batch}, heads={shape.heads}, kv_heads={shape.kv_heads!r}, q_len={shape.q_len},
        kv_len={shape.kv_len}, head_dim={shape.head_dim}, dtype={shape.dtype!r})))
# The tensors the mods read (closure cells or globals), found by identity, in the kernel's argument order.
_KS_FOUND = {{found.name: found for found in find_tensors(_KS_SCORE_MOD, _KS_MASK_MOD)}}
_KS_FOUND = [_KS_FOUND[name] for name in _KS_CAPTURES]


class Model(torch.nn.Module):
    def __init__(self, *captures):
        super().__init__()
        self.captures = dict(zip(_KS_CAPTURES, captures))

    def forward(self, q, k, v):
        # Where the mods hold their tensors, put the ones this model was built with, on the inputs' device, for
        # this call only.
        with bound(_KS_FOUND, {{name: t.to(q.device) for name, t in self.captures.items()}}):
            return reference_attention(q, k, v, _KS_SCORE_MOD, _KS_MASK_MOD)


def get_inputs():
    return [torch.randn(batch_size, heads, q_len, head_dim), torch.randn(batch_size, kv_heads, kv_len, head_dim),
            torch.randn(batch_size, kv_heads, kv_len, head_dim)]


def get_init_inputs():
    return [found.tensor for found in _KS_FOUND]
'''


__all__ = ["GeneratedKernel", "TraceError", "generate", "problem_source"]
