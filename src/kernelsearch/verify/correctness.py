"""Output comparison against the reference, with a mismatch report that says where and how it is wrong."""
from __future__ import annotations

import math

import torch

# atol = rtol per dtype: fp32 as KernelBench does today; fp16/bf16 as KernelBench's 1e-2.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 1e-2}
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


def degenerate_reason(refs_by_trial: list[list[torch.Tensor]], tol: float) -> str | None:
    """Why a constant answer could pass on this problem, or None. `refs_by_trial`: reference outputs of
    two or more trials with different inputs."""
    first = refs_by_trial[0]
    for i, ref in enumerate(first):
        r = ref.double()
        if r.numel() == 0:
            continue
        if torch.all(r.abs() <= tol + tol * r.abs()).item() or float(r.abs().max()) <= tol:
            return f"reference output {i} is within tolerance of zero everywhere"
        if r.numel() > 1 and torch.all((r - r.mean()).abs() <= tol + tol * r.abs()).item():
            return f"reference output {i} is within tolerance of its mean everywhere (near-constant)"
    if len(refs_by_trial) > 1 and all(
        a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=tol, rtol=tol)
        for other in refs_by_trial[1:] for a, b in zip(first, other)
    ):
        return "reference output does not change with the inputs (input-insensitive within tolerance)"
    return None


def compare(outs: list[torch.Tensor], refs: list[torch.Tensor], dtype: str, degenerate: bool = False) -> dict:
    """Check every output against its reference. Returns {ok, max_abs_err, max_rel_err, rel_l2, message,
    mismatch} where mismatch (or None) locates the errors."""
    tol = TOLERANCE[dtype]
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
        if out.device != ref.device:
            return {**result, "ok": False, "message": f"{name} is on {out.device}, reference on {ref.device}"}
        one = _compare_one(out, ref, tol, degenerate, dtype)
        result["max_abs_err"] = max(result["max_abs_err"], one["max_abs_err"])
        result["max_rel_err"] = max(result["max_rel_err"], one["max_rel_err"])
        result["rel_l2"] = max(result["rel_l2"], one["rel_l2"])
        if not one["ok"] and result["ok"]:
            result.update(ok=False, message=f"{name}: {one['message']}", mismatch=one["mismatch"])
    return result


def _compare_one(out: torch.Tensor, ref: torch.Tensor, tol: float, degenerate: bool, dtype: str) -> dict:
    if out.dtype == torch.bool or not (out.is_floating_point() or out.is_complex()):
        bad = out != ref
        o, r = out.double(), ref.double()
    else:
        o, r = out.double(), ref.double()
        both_nan = torch.isnan(o) & torch.isnan(r)
        same_inf = torch.isinf(o) & torch.isinf(r) & (o == r)
        bad = ~((o - r).abs() <= tol + tol * r.abs()) & ~both_nan & ~same_inf
    finite = torch.isfinite(o) & torch.isfinite(r)
    diff = torch.where(finite, (o - r).abs(), torch.zeros_like(o))
    max_abs = float(diff.max()) if diff.numel() else 0.0
    max_rel = float((diff / r.abs().clamp_min(tol)).max()) if diff.numel() else 0.0
    spread = float(torch.linalg.vector_norm(torch.where(finite, r - r[finite].mean() if finite.any() else r, 0)))
    scale = float(torch.linalg.vector_norm(torch.where(finite, r, 0)))
    err = float(torch.linalg.vector_norm(diff))
    rel_l2 = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
    result = {"ok": True, "max_abs_err": max_abs, "max_rel_err": max_rel, "rel_l2": rel_l2, "message": "",
              "mismatch": None}
    n_bad = int(bad.sum())
    if n_bad:
        result.update(ok=False, mismatch=describe_mismatch(o, r, bad))
        result["message"] = result["mismatch"]["summary"]
    elif degenerate:
        # Relative to the spread around the mean (a constant or zero answer scores >= 1), or for a single
        # value relative to the value itself.
        denominator = spread if r.numel() > 1 and spread > 0 else scale
        rel_spread = err / denominator if denominator > 0 else (0.0 if err == 0 else math.inf)
        result["rel_l2_spread"] = rel_spread
        if rel_spread > DEGENERATE_REL_L2[dtype]:
            result.update(ok=False, message=(
                f"passes atol/rtol={tol:g} only because the reference is degenerate: error relative to the "
                f"reference's variation is {rel_spread:.3g} (limit {DEGENERATE_REL_L2[dtype]:g})"))
    return result


def describe_mismatch(o: torch.Tensor, r: torch.Tensor, bad: torch.Tensor) -> dict:
    """Where the wrong elements are: count, first index, per-dimension range, whole rows, simple patterns."""
    n_bad, total = int(bad.sum()), bad.numel()
    first = _unravel(int(torch.nonzero(bad.flatten())[0]), tuple(bad.shape))
    report = {
        "wrong": n_bad, "total": total, "fraction_wrong": n_bad / total, "first_wrong_index": list(first),
        "first_wrong_value": _num(o[first]) if first else _num(o), "first_wrong_expected": _num(r[first]) if first
        else _num(r), "nan": int((torch.isnan(o) & ~torch.isnan(r)).sum()),
        "inf": int((torch.isinf(o) & ~torch.isinf(r)).sum()), "hints": [],
    }
    hints = report["hints"]
    if bad.ndim >= 1 and n_bad < total:
        idx = torch.nonzero(bad)
        for d in range(bad.ndim):
            lo, hi, size = int(idx[:, d].min()), int(idx[:, d].max()), bad.shape[d]
            if size > 1 and (lo > 0 or hi < size - 1):
                hints.append(f"along dim {d} (size {size}) only indices {lo}..{hi} are wrong")
    if bad.ndim >= 2:
        rows = bad.reshape(-1, bad.shape[-1])
        whole = int(rows.all(dim=1).sum())
        if whole:
            hints.append(f"{whole} of {rows.shape[0]} rows (last dim) are wrong in every element")
    if report["nan"]:
        hints.append(f"{report['nan']} elements are NaN where the reference is not: unwritten output "
                     "(the verifier fills free memory with NaN) or a division by zero")
    hints.extend(_pattern_hints(o, r))
    where = ", ".join(map(str, first))
    summary = (f"{n_bad} of {total} elements wrong ({100 * n_bad / total:.3g}%); first at [{where}]: "
               f"got {report['first_wrong_value']}, expected {report['first_wrong_expected']}")
    if hints:
        summary += "; " + "; ".join(hints)
    report["summary"] = summary
    return report


def _pattern_hints(o: torch.Tensor, r: torch.Tensor) -> list[str]:
    hints = []
    finite = torch.isfinite(o) & torch.isfinite(r) & (r.abs() > 1e-3)
    if finite.sum() > 8:
        ratio = (o[finite] / r[finite])
        median = float(ratio.median())
        if abs(median - 1) > 1e-2 and float((ratio - median).abs().max()) < 1e-3 * max(1.0, abs(median)):
            hints.append(f"output is {median:.6g} x the reference everywhere: a scale factor is off")
    if o.ndim == 2 and o.shape[0] == o.shape[1] and o.shape[0] > 1 and torch.allclose(o, r.T, atol=1e-3, rtol=1e-3):
        hints.append("output equals the transposed reference")
    return hints


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _num(t: torch.Tensor) -> float | int | bool:
    value = t.item()
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)
