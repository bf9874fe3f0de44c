"""`kernelsearch mcp`: the tools (tools.py) served over the Model Context Protocol on stdio, with the official SDK.

Every call runs under the server's deadline; bad arguments and timeouts come back as tool errors (is_error, a
one-line message) and the server goes on. A result carries the summary as text, then the same data as JSON text
and as structured content (for clients that read it). The pool starts with the server and ends with it: when
stdin closes, or on SIGINT/SIGTERM/SIGHUP (verify.live_pools), no worker or probe outlives it."""
from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from ..attention.spec import SpecError
from ..attention.trace import TraceError
from ..problem import ProblemError
from ..verify.pool.devices import DeviceError
from ..verify.tolerance import DEFAULT_PROFILE, DTYPES, PROFILES, ToleranceError
from ..verify.verdict import RULES
from .arguments import ArgumentError
from .probe_runner import ProbeFailed
from .tools import Answer, Tools

# Errors whose message is the whole story for the caller; anything else is our bug (the SDK logs it).
CALLER_ERRORS = (ArgumentError, ProblemError, ToleranceError, SpecError, TraceError, DeviceError, ProbeFailed,
                 FileNotFoundError)

INSTRUCTIONS = """kernelsearch judges GPU kernels (Triton, or CUDA C++ through torch's load_inline) against a
KernelBench-format PyTorch reference: `verify` runs the candidate on unseen inputs with checks against known
reward hacks and, on a GPU, times it against eager PyTorch and torch.compile. File arguments take a path or the
file's source text. A problem file defines `Model`, `get_inputs()`, `get_init_inputs()`; a candidate defines
`ModelNew` with the same signatures. Start with `problem_info` (sizes, work, the reference's time), then write a
kernel, `verify` it, read the mismatch report or timing, and iterate; `profile` shows where a correct kernel's
time goes (GPU only)."""

ProblemArg = Annotated[str, Field(description="KernelBench-format problem (Model, get_inputs, get_init_inputs): "
                                              "a path, or the file's source text")]
CandidateArg = Annotated[str, Field(description="candidate defining ModelNew (Triton, or CUDA via load_inline): a "
                                                "path, or the file's source text")]
DtypeArg = Annotated[Literal[DTYPES], Field(description="precision the problem is run in")]
SetArg = Annotated[dict[str, int | float | str | list[int | float]] | None, Field(
    description="change top-level size constants of the problem, e.g. {\"batch_size\": 4, \"dim\": 512}; values "
                "are numbers, lists (for tuple constants) or Python literals as strings; problem_info lists them")]
Result = Annotated[CallToolResult, dict[str, Any]]


@dataclass
class ServerSettings:
    device: str = "auto"  # auto | cuda | cpu
    gpus: list[int] | None = None  # one verifier worker per GPU; default all visible
    timeout_s: float = 600.0  # the longest any one tool call may take


def build_server(settings: ServerSettings) -> MCPServer:
    state: dict[str, Tools] = {}

    @asynccontextmanager
    async def lifespan(_server):
        state["tools"] = Tools(settings.device, settings.gpus)
        try:
            yield {}
        finally:
            state.pop("tools").close()

    server = MCPServer("kernelsearch", instructions=INSTRUCTIONS, lifespan=lifespan)

    async def call(name: str, work) -> CallToolResult:
        """Run one tool under the deadline; caller errors and timeouts become tool errors."""
        try:
            with anyio.fail_after(settings.timeout_s):
                answer: Answer = await work(state["tools"])
        except TimeoutError:
            raise ToolError(f"{name} did not finish within {settings.timeout_s:g} s (the server's --timeout); its "
                            f"work was stopped and the server is ready for the next call") from None
        except CALLER_ERRORS as e:  # the SDK puts "Error executing tool NAME: " before the message
            raise ToolError(str(e)) from None
        return CallToolResult(content=[TextContent(type="text", text=answer.summary),
                                       TextContent(type="text", text=json.dumps(answer.data, default=str))],
                              structured_content=answer.data, is_error=answer.is_error)

    @server.tool(description="Verify a candidate kernel against a KernelBench problem: the verdict (status, "
                             "message, mismatch report, timing on a GPU, PyTorch ops the candidate left in place, "
                             "warnings) as data, and the human summary. A candidate that crashes is a verdict "
                             "(runtime_error), not a failed call.")
    async def verify(problem: ProblemArg, candidate: CandidateArg, dtype: DtypeArg = "fp32", set: SetArg = None,
                     tolerance: Annotated[str, Field(description=f"tolerance profile: {', '.join(PROFILES)}")]
                     = DEFAULT_PROFILE,
                     atol: Annotated[float | None, Field(description="absolute tolerance in place of the "
                                                                     "profile's")] = None,
                     rtol: Annotated[float | None, Field(description="relative tolerance in place of the "
                                                                     "profile's")] = None,
                     timing: Annotated[bool, Field(description="time it on a GPU (no effect on the CPU)")] = True,
                     strict: Annotated[bool, Field(description="reject compute left in PyTorch")] = False,
                     rules: Annotated[str, Field(description="kernelbench: judged at the problem's shapes only, as "
                                                             "KernelBench's harness does (a kernel wrong only at the "
                                                             "second shape is correct there, shape_specific here)")]
                     = RULES[0]) -> Result:
        return await call("verify", lambda t: t.verify(problem, candidate, dtype, set, tolerance, atol, rtol, timing,
                                                       strict, rules))

    @server.tool(description="Describe a problem: input and output shapes, FLOPs and bytes per call, the "
                             "reference's time on this server's device, and the size constants `set` may change "
                             "(with whether it fits the CPU interpreter).")
    async def problem_info(problem: ProblemArg, set: SetArg = None) -> Result:
        return await call("problem_info", lambda t: t.problem_info(problem, set))

    @server.tool(description="List the problems of a suite: `kernelbench` (its Hugging Face dataset), a KernelBench "
                             "checkout, `attention` (the attention examples as problems), or any directory of "
                             "problem files. Each comes with a path to pass to verify.")
    async def list_problems(suite: Annotated[str, Field(description="kernelbench, attention, a KernelBench checkout "
                                                                    "or a directory of problem files")],
                            level: Annotated[int, Field(description="KernelBench level (1-4)")] = 1) -> Result:
        return await call("list_problems", lambda t: t.list_problems(suite, level))

    @server.tool(description="Generate a fused Triton attention kernel from a FlexAttention-style spec (score_mod "
                             "and/or mask_mod, SHAPES, TEST_SHAPES) and verify it at one of the spec's shapes "
                             "(SHAPES on a GPU, TEST_SHAPES on the CPU): the kernel's source and its verdict.")
    async def generate_attention(spec: Annotated[str, Field(description="attention spec: a path, or the file's "
                                                                        "source text")],
                                 shape: Annotated[int, Field(description="index into the spec's shapes for this "
                                                                         "device")] = 0) -> Result:
        return await call("generate_attention", lambda t: t.generate_attention(spec, shape))

    @server.tool(description="Profile a candidate on the GPU: each kernel of one steady-state forward with its "
                             "time, the forward's median time and its roofline fraction (the least time the "
                             "problem's FLOPs and bytes allow on this GPU, over the measured time). Without a GPU "
                             "the result says so (status needs_gpu). Profile kernels that verify says are correct.")
    async def profile(problem: ProblemArg, candidate: CandidateArg, dtype: DtypeArg = "fp32",
                      set: SetArg = None) -> Result:
        return await call("profile", lambda t: t.profile(problem, candidate, dtype, set))

    @server.tool(description="The state of a `kernelsearch solve` or `bench` run directory: finished or not, its "
                             "attempts by status, and its best kernel (the source for a solve run, a path per "
                             "problem for a bench).")
    async def run_status(run_dir: Annotated[str, Field(description="the run directory")]) -> Result:
        return await call("run_status", lambda t: t.run_status(run_dir))

    return server


def serve(settings: ServerSettings) -> None:
    """Serve on stdin/stdout until stdin closes."""
    build_server(settings).run("stdio")
