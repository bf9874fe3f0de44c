"""Does the answer keeper read the candidate's GPU outputs through CUDA IPC, inside bubblewrap and without it?
Verifies one kernel at its problem's full size in a fresh pool per setting and prints the verdict, the wall time
and every line the keeper wrote about IPC (a refusal says why; no line means every output opened in place).

    python benchmarks/keeper_ipc_probe.py --problem kb/level1/19_ReLU.py --kernel benchmarks/kernels/19_ReLU.py"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kernelsearch.problem import load_problem  # noqa: E402
from kernelsearch.verify import PoolConfig, WorkerPool, make_request  # noqa: E402


def probe(problem_path: Path, kernel_path: Path, sandbox: str, device: str) -> None:
    os.environ["KS_OS_SANDBOX"] = sandbox  # read by the pool when it starts its workers
    root = tempfile.mkdtemp(prefix="ks-ipc-probe-")
    problem = load_problem(problem_path)
    started = time.monotonic()
    with WorkerPool(PoolConfig(device=device, workdir=root)) as pool:
        verdict = pool.verify(make_request(problem, kernel_path.read_text(), kernel_path.stem, timing=False))
        wall = time.monotonic() - started
        log = "\n".join(p.read_text(errors="replace") for p in Path(root).glob("worker*.log"))
    said = [line for line in log.splitlines() if "answer keeper" in line or "IPC" in line]
    print(f"sandbox={sandbox}: {verdict.status} in {wall:.1f}s; containment: {verdict.containment[:70]}")
    print(f"  message: {verdict.message[:300]}")
    print("  keeper on IPC: " + ("; ".join(said)[:600] if said else "nothing (every output opened in place)"))
    if verdict.status != "correct":
        print("  log's last lines:\n    " + "\n    ".join(log.splitlines()[-25:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", type=Path, required=True)
    parser.add_argument("--kernel", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="cpu only checks this script (default: cuda)")
    args = parser.parse_args()
    for sandbox in ("on", "off"):
        probe(args.problem, args.kernel, sandbox, args.device)


if __name__ == "__main__":
    main()
