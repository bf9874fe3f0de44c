"""The tools of `kernelsearch mcp` over one warm verifier pool, shared by every call. Each takes plain arguments
and returns an Answer: a summary for people and the same facts as data. They know nothing of MCP (server.py);
whatever a tool waits on (a verifier job, a probe) is stopped when the call is cancelled or runs out of time."""
from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from ..attention.generate import generate
from ..attention.spec import load_spec
from ..attention.workflow import shape_request
from ..suites import load_suite
from ..verify import PoolConfig, Verdict, VerifyRequest, WorkerPool, make_request
from ..verify.checks.static_checks import check_source
from ..verify.tolerance import DEFAULT_PROFILE, DTYPES, check_settings
from ..verify.verdict import RULES
from ..verify.verdict import Status, format_verdict
from .arguments import ArgumentError, file_argument_path, load_problem_argument, read_file_argument
from .gpu_turns import GpuTurns
from .probe_runner import Probes
from .run_status import run_status as read_run_status
from .summaries import problem_summary, profile_summary, run_summary

KERNELBENCH_LEVELS = (1, 2, 3, 4)


@dataclass
class Answer:
    summary: str  # for people, and for the agent's context
    data: dict  # the structured result
    is_error: bool = False  # the call failed although it has a result (a problem the verifier cannot run here)


class Tools:
    def __init__(self, device: str = "auto", gpus: list[int] | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="kernelsearch-mcp-"))  # inline files, suites, kernels, probes
        self.pool = WorkerPool(PoolConfig(device=device, gpus=gpus))  # its workers start now, warm for every call
        self.device = self.pool.device
        self.probes = Probes(self.pool, self.root)
        self.turns = GpuTurns(on_gpu=self.device == "cuda")

    def close(self) -> None:
        """Stop everything at once: running jobs have no one left to answer."""
        self.probes.close()
        self.pool.kill_workers()
        self.pool.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- the tools -----------------------------------------------------------------------------------------
    async def verify(self, problem: str, candidate: str, dtype: str = "fp32", sizes: dict | None = None,
                     tolerance: str = DEFAULT_PROFILE, atol: float | None = None, rtol: float | None = None,
                     timing: bool = True, strict: bool = False, rules: str = RULES[0]) -> Answer:
        check_dtype(dtype)
        check_settings(tolerance, atol, rtol)
        if rules not in RULES:
            raise ArgumentError(f"rules must be one of {', '.join(RULES)}, got {rules!r}")
        loaded = await in_thread(load_problem_argument, problem, sizes, self.root)
        name, source = await in_thread(read_file_argument, candidate, "candidate")
        request = make_request(loaded, source, name, dtype=dtype, timing=timing, strict=strict, rules=rules,
                               tolerance=tolerance, atol=atol, rtol=rtol)
        return verdict_answer(await self.verdict(request))

    async def problem_info(self, problem: str, sizes: dict | None = None) -> Answer:
        loaded = await in_thread(load_problem_argument, problem, sizes, self.root)
        async with self.turns.exclusive():
            measured = await self.probes.run({"action": "problem_info", "problem_source": loaded.source,
                                              "device": self.device})
        data = {"problem": loaded.name, "path": loaded.path, "device": self.device, "constants": loaded.constants,
                "changed": {name: new for name, (old, new) in loaded.overrides.items()}, **measured}
        if self.device == "cpu":
            limits = VerifyRequest("", "")  # the interpreter's limits, as the verifier applies them
            data["cpu_interpreter"] = {
                "fits": measured["elements"] <= limits.max_cpu_elements and measured["flops"] <= limits.max_cpu_flops,
                "max_elements": limits.max_cpu_elements, "max_flops": limits.max_cpu_flops}
        return Answer(problem_summary(loaded, data), data)

    async def list_problems(self, suite: str, level: int = 1) -> Answer:
        problems, kind = await in_thread(self.find_suite, suite, level)
        rows = [{"key": p.key, "name": p.name, "path": str(p.path), "number": p.number, "level": p.level,
                 "dtype": p.dtype} for p in problems]
        data = {"suite": suite, "kind": kind, "level": level if kind == "kernelbench" else None, "count": len(rows),
                "problems": rows}
        listing = "\n".join(f"  {r['key']}: {r['path']}" for r in rows[:50])
        more = f"\n  ... and {len(rows) - 50} more" if len(rows) > 50 else ""
        return Answer(f"{len(rows)} problems in {suite} ({kind}):\n{listing}{more}", data)

    async def generate_attention(self, spec: str, shape: int = 0) -> Answer:
        name, kernel_path, source, label, request = await in_thread(self.generate_kernel, spec, shape)
        verdict = await self.verdict(request)
        answer = verdict_answer(verdict)
        data = {"spec": name, "shape_index": shape, "shape": label, "kernel_path": str(kernel_path),
                "source": source, "verdict": answer.data}
        summary = f"generated {kernel_path} from {name}; at {label}:\n{answer.summary}"
        return Answer(summary, data, is_error=answer.is_error)

    async def profile(self, problem: str, candidate: str, dtype: str = "fp32", sizes: dict | None = None) -> Answer:
        check_dtype(dtype)
        loaded = await in_thread(load_problem_argument, problem, sizes, self.root)
        name, source = await in_thread(read_file_argument, candidate, "candidate")
        report = check_source(source)
        if not report.ok:
            why = (f"syntax error at {report.syntax_error}" if report.syntax_error else
                   "it defines no class ModelNew" if not report.has_model_new else "; ".join(report.violations))
            raise ArgumentError(f"profile runs only candidates that pass the verifier's static checks: {why}")
        base = {"problem": loaded.name, "candidate": name, "dtype": dtype, "device": self.device}
        if self.device != "cuda":
            message = ("profile needs a CUDA GPU: this server runs on the CPU, where Triton's interpreter runs "
                       "the kernels and their times say nothing about a GPU (verify still judges correctness)")
            return Answer(message, {**base, "status": "needs_gpu", "message": message, "kernels": []})
        async with self.turns.exclusive():
            measured = await self.probes.run({"action": "profile", "problem_source": loaded.source,
                                              "candidate_source": source, "dtype": dtype})
        data = {**base, "status": "profiled", **measured}
        return Answer(profile_summary(data), data)

    async def run_status(self, run_dir: str) -> Answer:
        data = await in_thread(read_run_status, Path(run_dir).expanduser())
        return Answer(run_summary(data), data)

    # ---- helpers -------------------------------------------------------------------------------------------
    async def verdict(self, request: VerifyRequest) -> Verdict:
        """The pool's verdict; a call that is cancelled or out of time takes its job out of the pool with it."""
        async with self.turns.shared():
            future = self.pool.submit(request)
            try:
                return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
            finally:
                if not future.done():
                    self.pool.cancel(future)

    def find_suite(self, suite: str, level: int):
        """(problems, kind) for `kernelbench` (the Hugging Face dataset), `attention` (the examples), a KernelBench
        checkout, or a directory of problem files."""
        if level not in KERNELBENCH_LEVELS:
            raise ArgumentError(f"level must be one of {', '.join(map(str, KERNELBENCH_LEVELS))}, got {level}")
        work_dir = self.root / "suites" / uuid.uuid4().hex[:8]  # the attention suite writes its problems here
        if suite in ("kernelbench", "attention"):
            return load_suite(suite, level=level, device=self.device, work_dir=work_dir), suite
        root = Path(suite).expanduser()
        if not root.is_dir():
            raise ArgumentError(f"suite not found: {suite} (give kernelbench, attention, a KernelBench checkout or "
                                f"a directory of problem files)")
        if (root / "KernelBench").is_dir() or any((root / f"level{n}").is_dir() for n in KERNELBENCH_LEVELS):
            return load_suite("kernelbench", level=level, kernelbench_dir=str(root), work_dir=work_dir), "kernelbench"
        return load_suite(str(root), work_dir=work_dir), "directory"

    def generate_kernel(self, spec: str, index: int):
        """Trace the spec into a kernel file and make the verifier's request for one of its shapes."""
        loaded = load_spec(file_argument_path(spec, "spec", self.root))
        shapes, which = (loaded.shapes, "SHAPES") if self.device == "cuda" else (loaded.test_shapes, "TEST_SHAPES")
        if not 0 <= index < len(shapes):
            raise ArgumentError(f"shape {index} does not exist: the spec's {which} (used on the {self.device}) has "
                                f"{len(shapes)} entries, 0..{len(shapes) - 1}")
        kernel = generate(loaded)
        out = self.root / "attention" / f"{loaded.name}-{uuid.uuid4().hex[:8]}"
        out.mkdir(parents=True)
        kernel_path = out / f"{loaded.name}_attention.py"
        kernel_path.write_text(kernel.source)
        request = shape_request(loaded, kernel, kernel_path.stem, index, shapes[index], out, self.device)
        return loaded.name, kernel_path, kernel.source, shapes[index].label(), request


async def in_thread(fn, *args):
    """Blocking work off the event loop, so that other calls and pings are answered meanwhile; a call cancelled
    or out of time stops waiting for it at once."""
    return await anyio.to_thread.run_sync(partial(fn, *args), abandon_on_cancel=True)


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ArgumentError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def verdict_answer(v: Verdict) -> Answer:
    """The verdict as data, with the first failing trial's mismatch report at the top level, and as text."""
    mismatch = next((t["mismatch"] for t in v.trials if t.get("mismatch")), None)
    summary = format_verdict(v)
    return Answer(summary, {**v.to_json(), "mismatch": mismatch, "summary": summary},
                  is_error=v.status == Status.PROBLEM_ERROR)
