"""A bench run without a model: the scripted OpenAI-protocol test server answers with our hand-written test
candidates, so this exercises bench, the verifier, metrics and --replay end to end (it says nothing about how
good a model is).

    python benchmarks/scripted_bench.py RUN_DIR [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.openai_server import ScriptedServer, fenced  # noqa: E402

PROBLEMS = ROOT / "tests" / "problems"
CANDIDATES = ROOT / "tests" / "candidates"
# KernelBench id -> (problem file, text only its prompt contains, candidate answers in the order they are given)
SUITE = {
    1: ("elementwise_add_relu", "torch.relu(a + b)", ["add_relu_wrong_tail", "add_relu_slow", "add_relu_triton"]),
    2: ("row_sum", "torch.sum(x, dim=self.dim", ["row_sum_triton"]),
    3: ("softmax", "torch.softmax(x, dim=1)", ["softmax_triton"]),
    4: ("matmul", "torch.matmul(A, B)", ["matmul_wrong_scale", "matmul_triton"]),
    5: ("cross_entropy", "cross_entropy(predictions", ["cross_entropy_triton"]),
    6: ("conv_relu_bias", "x + self.bias", ["conv_relu_bias_partial"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    from kernelsearch.cli import main as kernelsearch

    checkout = Path(tempfile.mkdtemp(prefix="ks-suite-"))
    level = checkout / "KernelBench" / "level1"
    level.mkdir(parents=True)
    script = []
    for number, (problem, match, answers) in SUITE.items():
        shutil.copyfile(PROBLEMS / f"{problem}.py", level / f"{number}_{problem}.py")
        script += [{"content": fenced((CANDIDATES / f"{name}.py").read_text()), "match": match,
                    "reasoning_content": f"(scripted answer: tests/candidates/{name}.py)"} for name in answers]
    with ScriptedServer(script) as server:
        try:
            kernelsearch(["bench", "kernelbench", "--kernelbench-dir", str(checkout), "--base-url", server.url,
                          "--lanes", "1", "--budget", "3m", "--max-attempts", "4", "--concurrent", "3",
                          "--device", args.device, "--out", args.run_dir])
        finally:
            shutil.rmtree(checkout, ignore_errors=True)


if __name__ == "__main__":
    main()
