"""The search's performance feedback on real verdicts (GPU): each sample is verified and timed, then the kernels the
profiler timed (the candidate's, eager's, torch.compile's), the roofline fractions, the bound and the strategy the
next attempt would get are printed and checked. On the CPU nothing is timed, and it checks that the feedback says
nothing rather than something wrong. Exit 1 when a check fails."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from kernelsearch.llm.prompt import Previous
from kernelsearch.problem import load_problem
from kernelsearch.search.feedback import performance
from kernelsearch.search.problem_profile import profile_problem
from kernelsearch.search.strategies import choose
from kernelsearch.verify import PoolConfig, WorkerPool, make_request
from kernelsearch.verify.harness.gpu_kernels import KERNEL_KEYS

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS, CANDIDATES = ROOT / "tests" / "problems", ROOT / "tests" / "candidates"
SAMPLES = [  # problem, candidate, sizes, the bound a GPU should show
    ("elementwise_add_relu", "add_relu_triton", {"batch_size": "4096", "dim": "16384"}, "memory"),
    ("matmul", "matmul_triton", {"M": "4096", "K": "4096", "N": "4096"}, "compute"),  # ieee tl.dot, 32x32 tiles
    ("conv_relu_bias", "conv_relu_bias_partial", {"batch_size": "64", "height": "128", "width": "128"}, None),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", help="write every sample's verdict timing and feedback here")
    args = parser.parse_args()
    failures, out = [], {}
    with WorkerPool(PoolConfig(device=args.device)) as pool:
        for name, candidate, sizes, expected in SAMPLES:
            problem = load_problem(PROBLEMS / f"{name}.py", sizes if args.device != "cpu" else None)
            profile = asyncio.run(profile_problem(problem.source))  # at the sizes verified
            code = (CANDIDATES / f"{candidate}.py").read_text()
            v = pool.verify(make_request(problem, code, candidate, timing=True))
            feedback = performance(v, "fp32")
            nxt = choose(Previous("first", code, v), 0, 0, "triton", profile.tags(),
                         feedback.bound if feedback else None) if v.ok else None
            print(f"== {name} ({candidate}, {sizes if args.device != 'cpu' else 'file sizes'}): {v.status}, "
                  f"{v.device}; tags {sorted(profile.tags())}")
            print(feedback.text() if feedback else "(no feedback: not timed)")
            print(f"next strategy: {nxt.name if nxt else '-'}\n")
            out[name] = {"status": v.status, "timing": v.timing, "checks": v.checks.get("roofline"),
                         "bound": feedback.bound if feedback else None, "next": nxt.name if nxt else None,
                         "feedback": feedback.text() if feedback else ""}
            if not v.ok:
                failures.append(f"{name}: {v.status}: {v.message.splitlines()[0] if v.message else ''}")
            elif args.device == "cpu":
                if feedback is not None or (v.timing and KERNEL_KEYS["candidate"] in v.timing):
                    failures.append(f"{name}: feedback on the CPU")
            else:
                missing = [k for k in ("candidate", "eager") if not (v.timing or {}).get(KERNEL_KEYS[k])]
                if missing or feedback is None:
                    failures.append(f"{name}: no kernel times for {missing} "
                                    f"({(v.timing or {}).get('kernels_unavailable', '')})")
                elif expected and feedback.bound != expected:
                    failures.append(f"{name}: bound {feedback.bound}, expected {expected}")
                if not (v.checks.get("roofline") or {}).get("peak_flops"):
                    failures.append(f"{name}: the roofline check has no peaks")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print("FAILED:\n  " + "\n  ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
