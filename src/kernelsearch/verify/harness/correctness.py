"""Output comparison against the reference: does each output pass the tolerance, and is the reference one that a
constant answer could pass (degenerate)?

Outputs are compared chunk by chunk (chunks.py), so that extra memory stays O(chunk) however large they are.
References may live on the CPU (pinned or not) while the outputs are on the GPU: each reference chunk is moved
to its output's device on its own. Where and how an output is wrong is mismatch.py's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..tolerance import Tolerance, short_number
from . import chunks
from .mismatch import WrongElements

# When the reference is degenerate (a constant or zero output would pass atol), the relative L2 error
# ||out - ref|| / ||ref - mean(ref)|| must also be small (||ref|| for a single value). A constant output
# scores >= 1 there.
DEGENERATE_REL_L2 = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 2e-2}


def flatten(output) -> list:
    """A forward's result as a flat list of tensors (tuples, lists and Python numbers allowed)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flatten(item)]
    if isinstance(output, (int, float, bool)):
        return [torch.tensor(output)]
    raise TypeError(f"forward returned {type(output).__name__}, not tensors")


def compare(outs: list[torch.Tensor], refs: list[torch.Tensor], tol: Tolerance, degenerate: bool = False,
            device: torch.device | str | None = None) -> dict:
    """Check every output against its reference. Returns {ok, max_abs_err, max_rel_err, rel_l2, message,
    mismatch} where mismatch (or None) locates the errors. `device`: where every output must be (by default,
    where its reference is); references elsewhere are brought there a chunk at a time."""
    result = {"ok": True, "max_abs_err": 0.0, "max_rel_err": 0.0, "rel_l2": 0.0, "message": "", "mismatch": None}
    if len(outs) != len(refs):
        return {**result, "ok": False, "message": f"returned {len(outs)} outputs, reference returns {len(refs)}"}
    for i, (out, ref) in enumerate(zip(outs, refs)):
        name = f"output {i}" if len(refs) > 1 else "output"
        if tuple(out.shape) != tuple(ref.shape):
            return {**result, "ok": False,
                    "message": f"{name} has shape {tuple(out.shape)}, reference {tuple(ref.shape)}"}
        if out.dtype != ref.dtype:
            return {**result, "ok": False, "message": f"{name} has dtype {out.dtype}, reference {ref.dtype}"}
        expected = torch.device(device) if device is not None else ref.device
        if not _on(out.device, expected):
            return {**result, "ok": False, "message": f"{name} is on {out.device}, expected {expected}"}
        one = _compare_one(out, ref, tol, degenerate)
        result["max_abs_err"] = max(result["max_abs_err"], one["max_abs_err"])
        result["max_rel_err"] = max(result["max_rel_err"], one["max_rel_err"])
        result["rel_l2"] = max(result["rel_l2"], one["rel_l2"])
        if not one["ok"] and result["ok"]:
            result.update(ok=False, message=f"{name}: {one['message']}", mismatch=one["mismatch"])
    return result


def degenerate_reason(refs_by_trial: list[list[torch.Tensor]], tol: Tolerance,
                      device: torch.device | str | None = None) -> str | None:
    """Why a constant answer could pass on this problem, or None. `refs_by_trial`: reference outputs of
    two or more trials with different inputs. `device`: where to compute (by default where each reference is)."""
    first = refs_by_trial[0]
    for i, ref in enumerate(first):
        if ref.numel() == 0:
            continue
        if _constant_passes(ref, 0.0, tol, device):
            return f"reference output {i} is within tolerance of zero everywhere"
        if ref.numel() > 1:
            mean = sum(c.sum().item() for c in chunks.in_chunks(ref, device)) / ref.numel()
            if _constant_passes(ref, mean, tol, device):
                return f"reference output {i} is within tolerance of its mean everywhere (near-constant)"
    if len(refs_by_trial) > 1 and all(
        a.shape == b.shape and all(torch.allclose(x, y, atol=tol.atol, rtol=tol.rtol)
                                   for x, y in zip(chunks.in_chunks(a, device), chunks.in_chunks(b, device)))
        for other in refs_by_trial[1:] for a, b in zip(first, other)
    ):
        return "reference output does not change with the inputs (input-insensitive within tolerance)"
    return None


def _constant_passes(ref: torch.Tensor, value: float, tol: Tolerance, device) -> bool:
    """Would an output of `value` everywhere pass? (For zero this also covers max |ref| <= atol.)"""
    return all(bool(torch.all((value - r).abs() <= tol.atol + tol.rtol * r.abs()))
               for r in chunks.in_chunks(ref, device))


# ---- one output --------------------------------------------------------------------------------------------
@dataclass
class _Errors:
    """Error sizes over the chunks seen so far, over elements finite in both output and reference."""
    max_abs: float = 0.0
    max_rel: float = 0.0
    err_sq: float = 0.0  # sum of squared errors
    ref_sq: float = 0.0  # sum of squared reference values
    ref_n: int = 0  # count, mean and sum of squared deviations of the reference values, merged chunk by chunk
    ref_mean: complex = 0.0  # (Chan et al.), so that a near-constant reference keeps its small spread exactly
    ref_m2: float = 0.0

    def add_reference(self, r: torch.Tensor) -> None:
        """A chunk's reference values (finite ones, widened)."""
        n = r.numel()
        if n == 0:
            return
        mean = r.mean().item()
        total = self.ref_n + n
        delta = mean - self.ref_mean
        self.ref_m2 += float((r - mean).abs().square().sum()) + abs(delta) ** 2 * self.ref_n * n / total
        self.ref_mean += delta * n / total
        self.ref_n = total
        self.ref_sq += float(r.abs().square().sum())


def _compare_one(out: torch.Tensor, ref: torch.Tensor, tol: Tolerance, degenerate: bool) -> dict:
    """One output against its reference (same shape and dtype), in one pass over their chunks."""
    exact = out.dtype == torch.bool or not (out.is_floating_point() or out.is_complex())
    # relative error against max(|ref|, atol): below atol an element passes on atol alone
    floor = tol.atol if tol.atol > 0 else torch.finfo(torch.float64).tiny
    errors, wrong = _Errors(), WrongElements(tuple(out.shape))
    for offset, o_raw, r_raw in chunks.pairs(out, ref):
        o, r = chunks.wide(o_raw), chunks.wide(r_raw)
        gap, size = (o - r).abs(), r.abs()
        if exact:
            bad = o_raw != r_raw
        else:
            both_nan = torch.isnan(o) & torch.isnan(r)
            same_inf = torch.isinf(o) & torch.isinf(r) & (o == r)
            bad = ~(gap <= tol.atol + tol.rtol * size) & ~both_nan & ~same_inf
        finite = torch.isfinite(o) & torch.isfinite(r)
        diff = torch.where(finite, gap, 0.0)
        errors.max_abs = max(errors.max_abs, float(diff.max()))
        # over elements finite in both, like max_abs (a NaN reference would make the maximum NaN)
        errors.max_rel = max(errors.max_rel, float(torch.where(finite, diff / size.clamp_min(floor), 0.0).max()))
        errors.err_sq += float(diff.square().sum())
        errors.add_reference(r[finite])
        wrong.add(offset, bad, o, r)

    spread, scale, err = math.sqrt(errors.ref_m2), math.sqrt(errors.ref_sq), math.sqrt(errors.err_sq)
    rel_l2 = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
    result = {"ok": True, "max_abs_err": errors.max_abs, "max_rel_err": errors.max_rel, "rel_l2": rel_l2,
              "message": "", "mismatch": None}
    if wrong.wrong:
        result.update(ok=False, mismatch=wrong.report(out, ref))
        result["message"] = result["mismatch"]["summary"]
    elif degenerate:
        # Relative to the spread around the mean (a constant or zero answer scores >= 1), or for a single
        # value relative to the value itself.
        denominator = spread if out.numel() > 1 and spread > 0 else scale
        rel_spread = err / denominator if denominator > 0 else (0.0 if err == 0 else math.inf)
        result["rel_l2_spread"] = rel_spread
        limit = DEGENERATE_REL_L2[tol.dtype]
        if rel_spread > limit:
            result.update(ok=False, message=(
                f"passes atol={short_number(tol.atol)}, rtol={short_number(tol.rtol)} only because the reference "
                f"is degenerate: error relative to the reference's variation is {rel_spread:.3g} (limit {limit:g})"))
    return result


def _on(actual: torch.device, expected: torch.device) -> bool:
    """`cuda` accepts any GPU; `cuda:1` only that one."""
    return actual.type == expected.type and (expected.index is None or actual.index == expected.index)
