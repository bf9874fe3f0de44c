"""The text an agent reads first: each tool's answer in a few lines (the data itself goes along as JSON)."""
from __future__ import annotations

from ..problem import Problem


def problem_summary(problem: Problem, d: dict) -> str:
    def shapes(items) -> str:
        return ", ".join(f"{x['shape']} {x['dtype']}" if "shape" in x else x["value"] for x in items or []) or "?"

    ref = d["reference"]
    timed = (f"{ref['median_ms']:.4g} ms median on {d['device_name']}" if "median_ms" in ref
             else f"not timed: {ref['unavailable']}")
    lines = [f"{problem.name}: ({shapes(d['inputs'])}) -> ({shapes(d['outputs'])})",
             f"  work per call: {d['flops']:.3g} FLOPs in matmuls/convolutions, {d['elements']:.3g} tensor elements "
             f"({d['bytes_fp32'] / 2**20:.3g} MiB in fp32)",
             f"  reference: {timed}"]
    if d.get("roofline_floor_ms") is not None:
        lines.append(f"  roofline floor on this GPU: {d['roofline_floor_ms']:.4g} ms")
    if "cpu_interpreter" in d and not d["cpu_interpreter"]["fits"]:
        lines.append("  too large for the verifier on the CPU (Triton's interpreter): shrink it with `set`")
    constants = ", ".join(f"{k}={v}" for k, v in d["constants"].items()) or "none"
    lines.append(f"  constants `set` may change: {constants}")
    return "\n".join(lines)


def profile_summary(d: dict) -> str:
    fraction = d.get("roofline_fraction")
    lines = [f"{d['candidate']} on {d['device_name']} ({d['dtype']}): {d['forward']['median_ms']:.4g} ms per forward "
             f"(median), kernels {d['kernel_total_ms']:.4g} ms; "
             + (f"{fraction:.1%} of the roofline ({d['roofline_floor_ms']:.4g} ms floor)" if fraction is not None
                else "roofline unknown for this GPU")]
    for k in d["kernels"][:12]:
        share = f"{k['share']:.0%}" if k["share"] is not None else "?"
        lines.append(f"  {k['ms'] * 1e3:9.1f} us {share:>4} x{k['calls']} {k['name'][:100]}"
                     + ("" if k["own"] else "  (not the candidate's own)"))
    return "\n".join(lines)


def run_summary(d: dict) -> str:
    if d["kind"] == "solve":
        lines = [f"solve run {d['run_dir']}: {d['state']}, {d['attempts']} attempts {d['statuses']}",
                 f"  best: {best_line(d['best'])}" if d.get("best") else "  no kernel proven correct yet"]
    else:
        lines = [f"bench run {d['run_dir']}: {len(d['problems'])} problems {d['states']}, {d['with_kernel']} with a "
                 f"correct kernel"]
        lines += [f"  {p['key']}: {p['state']}" + (f", best {best_line(p['best'])}" if p.get("best") else "")
                  for p in d["problems"][:50]]
    return "\n".join(lines + ([f"  {d['note']}"] if d.get("note") else []))


def best_line(best: dict) -> str:
    speed = f", {best['speedup_vs_eager']:.3g}x eager" if best.get("speedup_vs_eager") else ""
    where = best.get("kernel_path") or f"attempt {best['attempt']}"
    return f"{where} ({best['checked']}){speed}"
