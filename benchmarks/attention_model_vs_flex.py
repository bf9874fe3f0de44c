"""Issue #26, the attention specs: every correct kernel of a `solve SPEC` run (the generated seed and the model's
attempts) timed forward beside FlexAttention at the spec's GPU shapes, in the shape's dtype and in fp32 (the dtype
the run searched in), each output checked against the float32 reference first.

`kernelsearch retime` times such a run at its problem file's sizes, which for a spec are its CPU test shape
(67 tokens): too small to say anything of speed. This is the GPU comparison the issue asks for.

    python3 benchmarks/attention_model_vs_flex.py SPEC.py RUN_DIR [SPEC.py RUN_DIR ...] --json OUT.json

Times are triton.testing.do_bench medians [p20, p80] in ms; Flex is torch.compile(flex_attention) (default mode).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kernelsearch.attention.kernel_module import load_kernel_module, make_inputs  # noqa: E402
from kernelsearch.attention.reference import TOLERANCE, reference_attention  # noqa: E402
from kernelsearch.attention.spec import load_spec  # noqa: E402
from kernelsearch.attention.versus_flex import QUANTILES, flex_functions  # noqa: E402
from kernelsearch.search.run_dir import RunDir  # noqa: E402


def correct_attempts(run: RunDir) -> list[tuple[int, str, str]]:
    """(attempt id, strategy, code) of every correct attempt, in order; the seed is attempt 1, strategy generated."""
    with sqlite3.connect(f"file:{run.store}?mode=ro", uri=True) as db:
        return db.execute("select id, strategy, code from attempts where status = 'correct' and code is not null "
                          "order by id").fetchall()


def timed(fn) -> list[float]:
    return [round(t, 4) for t in triton.testing.do_bench(fn, quantiles=QUANTILES)]


def relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    """As attention.reference.TOLERANCE is defined: max |ours - reference| / max |reference|."""
    return ((out.float() - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def bench_run(spec_path: Path, run: RunDir, shapes: int, dtypes: list[str], scratch: Path):
    """Yields one row per shape and dtype, as it is measured (a call cut short keeps what it measured)."""
    from torch.nn.attention.flex_attention import create_block_mask
    spec = load_spec(spec_path)
    problem = load_kernel_module(run.problem_file)
    captures = [t.cuda() if isinstance(t, torch.Tensor) else t for t in problem.get_init_inputs()]
    models = []
    for attempt, strategy, code in correct_attempts(run):
        path = scratch / f"{run.path.name}_attempt{attempt}.py"
        path.write_text(code)
        try:
            model = load_kernel_module(path).ModelNew(*captures).cuda()  # from a file: Triton reads its source
            models.append((attempt, strategy, model, ""))
        except Exception as e:  # recorded, not fatal: the others are still timed
            models.append((attempt, strategy, None, f"{type(e).__name__}: {e}"[:200]))
    flex = flex_functions(autotune=False)["flex"]
    for base in spec.shapes[:shapes]:
        for dtype in dtypes:
            shape = dataclasses.replace(base, dtype=dtype)
            q, k, v = make_inputs(shape, "cuda")
            reference = reference_attention(q.float(), k.float(), v.float(), spec.score_mod, spec.mask_mod)
            block_mask = (create_block_mask(spec.mask_mod, None, None, shape.q_len, shape.kv_len, device="cuda")
                          if spec.mask_mod else None)
            flex_call = lambda: flex(q, k, v, score_mod=spec.score_mod, block_mask=block_mask)  # noqa: E731
            row = {"run": run.path.name, "shape": f"B{shape.batch} H{shape.heads} S{shape.q_len} D{shape.head_dim}",
                   "dtype": dtype, "tolerance": TOLERANCE[dtype], "kernels": []}
            row["flex_error"] = relative_error(flex_call(), reference)
            row["flex_ms"] = timed(flex_call)
            for attempt, strategy, model, failed in models:
                entry = {"attempt": attempt, "strategy": strategy}
                if model is None:
                    entry["status"] = f"did not load: {failed}"
                else:
                    try:
                        with torch.no_grad():
                            error = relative_error(model(q, k, v), reference)
                        entry["error"] = error
                        if error <= TOLERANCE[dtype]:
                            with torch.no_grad():
                                entry["ms"] = timed(lambda: model(q, k, v))
                            entry["status"] = "ok"
                            entry["vs_flex"] = round(row["flex_ms"][0] / entry["ms"][0], 3)
                        else:
                            entry["status"] = (f"wrong at this shape: error {error:.3g} > {TOLERANCE[dtype]:g} "
                                               f"(Flex's {row['flex_error']:.3g})")
                    except Exception as e:
                        entry["status"] = f"failed: {type(e).__name__}: {e}"[:200]
                row["kernels"].append(entry)
                print(f"{run.path.name} {row['shape']} {dtype} attempt {attempt} ({strategy}): {entry['status']}"
                      + (f", error {entry['error']:.3g}" if "ms" in entry else "")
                      + (f" {entry['ms'][0]} ms, {entry['vs_flex']}x Flex ({row['flex_ms'][0]} ms)"
                         if "ms" in entry else ""), flush=True)
            seed = next((e for e in row["kernels"] if e["strategy"] == "generated" and "ms" in e), None)
            model_times = [e for e in row["kernels"] if e["strategy"] != "generated" and "ms" in e]
            if seed and model_times:
                best = min(model_times, key=lambda e: e["ms"][0])
                row["model_best"] = {"attempt": best["attempt"], "ms": best["ms"][0],
                                     "vs_generated": round(seed["ms"][0] / best["ms"][0], 3),
                                     "vs_flex": best["vs_flex"]}
            yield row
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", help="SPEC.py RUN_DIR, repeated")
    ap.add_argument("--shapes", type=int, default=2, help="the spec's first N GPU shapes")
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give SPEC.py RUN_DIR pairs")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for spec_path, run_dir in zip(args.pairs[::2], args.pairs[1::2]):
            for row in bench_run(Path(spec_path), RunDir(run_dir), args.shapes, args.dtypes.split(","),
                                 Path(scratch)):
                rows.append(row)
                Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(),
                                                       "torch": torch.__version__, "triton": triton.__version__,
                                                       "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
