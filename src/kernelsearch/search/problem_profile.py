"""What a problem's reference does, read before the first prompt: its PyTorch ops, which kinds of work they are
(matrix products, convolutions, reductions, ...), and its FLOPs and bytes per call. Strategies that do not apply
to the problem are never offered (an elementwise op has no product for tensor cores).

The reference runs once on the meta device (nothing allocated, nothing computed: a 16 GiB problem costs nothing)
under a dispatch mode that names every ATen op, in a process of its own (problem_trace.py: the problem's code
never runs in the search's process). When it cannot run there, the op names are read from the source instead."""
from __future__ import annotations

import ast
import asyncio
import json
import math
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..verify.containment.sandbox import worker_env

PROFILE_TIMEOUT_S = 120.0  # importing torch takes ~2-5 s here; a problem that builds for minutes is not worth more
KINDS = ("matmul", "conv", "attention", "reduction", "pooling", "scan", "elementwise")
# The strategies' `needs` may also name: `several_ops` (more than one compute op call: something to fuse),
# `contraction` (matmul, conv or attention) and `compute_heavy` (a contraction with enough FLOPs per byte that
# tensor cores can pay off).
CONTRACTIONS = {"matmul", "conv", "attention"}
# An H100 does 67 TFLOP/s of fp32 FMA on 3.35 TB/s: 20 FLOP per byte. Below that even the plain cores outrun
# memory, and tensor cores cannot help (matrix-vector 0.5, depthwise convolutions 0.7-5 on KernelBench L1).
COMPUTE_HEAVY_INTENSITY = 20.0
MEMORY_BOUND_INTENSITY = 10.0

# Names of ATen ops (overload packets) and of the source's calls, by kind. Order matters: the first match wins.
NAME_RULES = [
    ("attention", re.compile(r"scaled_dot_product|multi_?head_?attention|flash_attention|attention", re.I)),
    ("conv", re.compile(r"conv", re.I)),
    ("pooling", re.compile(r"pool", re.I)),
    ("matmul", re.compile(r"^(mm|bmm|addmm|baddbmm|addbmm|matmul|dot|vdot|mv|addmv|addr|linear|bilinear|einsum|"
                          r"tensordot|outer|inner|chain_matmul|linalg_matmul|_int_mm|Linear|Bilinear|"
                          r"(lstm|gru|rnn)(_cell)?|LSTM|GRU|RNN|LSTMCell|GRUCell|RNNCell)$", re.I)),
    ("scan", re.compile(r"^(cumsum|cumprod|cummax|cummin|logcumsumexp|_logcumsumexp)$")),
    ("reduction", re.compile(r"norm|softmax|^(sum|mean|amax|amin|max|min|prod|argmax|argmin|var|std|var_mean|"
                             r"std_mean|logsumexp|any|all|nll_loss\w*|mse_loss|l1_loss|smooth_l1_loss|huber_loss|"
                             r"kl_div|binary_cross_entropy\w*|cross_entropy|cosine_similarity|"
                             r"triplet_margin_loss|hinge_embedding_loss|margin_ranking_loss|cdist|_cdist_forward|"
                             r"median|mode|topk|sort|CrossEntropyLoss|MSELoss|KLDivLoss|Softmax|LogSoftmax)$",
                             re.I)),
]
# ATen ops that move or make data but compute nothing a kernel is asked to write.
FREE_OPS = {"empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
            "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full", "detach", "alias", "lift_fresh",
            "lift_fresh_copy", "_to_copy", "copy_", "clone", "contiguous", "t", "_unsafe_view", "view", "reshape",
            "expand", "permute", "transpose", "squeeze", "unsqueeze", "flatten", "unflatten", "split", "chunk",
            "slice", "select", "narrow", "as_strided", "unbind", "cat", "stack", "arange", "scalar_tensor", "randn",
            "rand", "randint", "normal_", "uniform_", "fill_", "zero_", "set_", "resize_", "_local_scalar_dense",
            "split_with_sizes", "view_as", "expand_as", "repeat", "index_select", "masked_fill", "pad",
            "constant_pad_nd", "sym_size", "sym_stride", "sym_numel", "_reshape_alias", "item", "to", "type_as"}
# Reductions whose schema has no `dim` argument and then reduce every dimension (sum.default, mean.default, ...).
WHOLE_REDUCTIONS = {"sum", "mean", "prod", "amax", "amin", "max", "min", "any", "all", "var", "std", "norm",
                    "linalg_vector_norm", "logsumexp"}
MAX_REDUCTIONS_SHOWN = 3
# What the elementwise work of a fused kernel follows, by kind (the fuse strategy's $fusion_rule).
PRODUCERS = {"matmul": "a matrix product", "conv": "a convolution", "attention": "an attention product",
             "reduction": "a reduction", "pooling": "a pooling window", "scan": "a scan"}
# What reading the input once means, by kind (the one-pass strategies' $pass_rule): a running max and sum only
# where the reference has a softmax or a logsumexp (a relay run asked MaxPool2D for "softmax-like" work).
PASS_RULES = {
    "reduction": "give each program whole rows to reduce and keep them in registers between computing a statistic "
                 "and applying it, accumulating every statistic in the same pass (a sum and a sum of squares "
                 "together)",
    "pooling": "give each program a block of outputs and load the input tile their windows cover once, taking "
               "every window from it rather than loading overlapping windows again",
    "scan": "give each program a segment and carry its running total into the next segment instead of making a "
            "second pass",
}
ONLINE_RULE = ("give each program whole rows and use an online formulation where the reference makes several passes "
               "(a running max and a running sum, the sum rescaled whenever the max grows)")
SOFTMAX_LIKE = re.compile(r"softmax|logsumexp", re.I)
# Reductions that read each element once in any kernel: one pass is no strategy for them (relay run, L1 47 sum).
PLAIN_REDUCTIONS = {"sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "any", "all"}
# The longest row one program can keep on chip between a statistic and its use: an H100 SM has 256 KB of registers
# for all its warps beside the working tiles; 128 KB is 32K fp32 values. Longer rows are read twice whatever the
# kernel (relay run, 2026-12-07: "read every element once" asked three times of L1 23 softmax, 393216 per row,
# and twice of L1 40 LayerNorm, 4M per row).
ROW_ON_CHIP_BYTES = 128 * 1024
# Past this many elements a 32-bit offset wraps (relay run, 2026-12-07: L1 63's output has 2.1e9 elements at its
# original size; a kernel checked at the shrunk size would pass, then write out of bounds on the GPU).
INT32_ELEMENTS = 2 ** 31


@dataclass
class ProblemProfile:
    ops: list[str] = field(default_factory=list)  # compute ops in order of first call, e.g. ["addmm", "relu"]
    kinds: list[str] = field(default_factory=list)  # of KINDS, in KINDS' order
    op_calls: int = 0  # compute op calls in one forward (a loop of 10 matmuls is 10)
    flops: float | None = None  # per call, as torch's FlopCounterMode counts them (gpu_timing.work_of_call)
    bytes: int | None = None  # inputs, outputs and parameters, each moved once, in the run's dtype
    read_bytes: int | None = None  # of those, the inputs and parameters (the rest is written: the outputs)
    reductions: list[dict] = field(default_factory=list)  # {op, shape, stride, dims} of each distinct reduction
    largest_tensor: int | None = None  # elements of the largest input, parameter, intermediate or output
    how: str = "traced"  # traced (on the meta device) | source (op names read from the source) | unknown
    note: str = ""  # why tracing failed, when it did

    @property
    def intensity(self) -> float | None:
        """FLOP (of products and convolutions, as torch counts them) per byte moved."""
        return self.flops / self.bytes if self.flops is not None and self.bytes else None

    def tags(self) -> set[str]:
        """What strategies' `needs` are matched against."""
        tags = set(self.kinds)
        if self.op_calls > 1 or len(self.ops) > 1:
            tags.add("several_ops")
        if tags & CONTRACTIONS:
            tags.add("contraction")
            if self.intensity is None or self.intensity >= COMPUTE_HEAVY_INTENSITY:
                tags.add("compute_heavy")
        if self.one_pass_helps():
            tags.add("one_pass")
        return tags

    def one_pass_helps(self) -> bool:
        """Whether reading the input once is a strategy here: pooling and scans, and reductions whose statistic is
        applied to the data again (softmax, norms) over rows that fit on chip (ROW_ON_CHIP_BYTES, at 4 bytes an
        element); not a plain reduction (PLAIN_REDUCTIONS), which reads each element once in any kernel."""
        if {"pooling", "scan"} & set(self.kinds):
            return True
        if "reduction" not in self.kinds or not set(self.ops) - PLAIN_REDUCTIONS:
            return False
        longest = max((math.prod(r["shape"][d] for d in r["dims"]) for r in self.reductions), default=0)
        return longest * 4 <= ROW_ON_CHIP_BYTES

    def describe(self) -> str:
        """Two lines for the prompt: the ops and the work."""
        if self.how == "unknown":
            return ""
        ops = ", ".join(self.ops[:12]) + (f" and {len(self.ops) - 12} more" if len(self.ops) > 12 else "")
        lines = [f"PyTorch ops of one forward: {ops or 'none found'} ({', '.join(self.kinds) or 'no compute'})"]
        if self.flops is not None and self.bytes:
            work = (f"{_count(self.flops)}FLOP in products and convolutions, {self.intensity:.3g} FLOP per byte"
                    if self.flops else "no matrix products or convolutions")
            split = (f" ({_count(self.read_bytes)}B read, {_count(self.bytes - self.read_bytes)}B written)"
                     if self.read_bytes is not None else "")
            lines.append(f"Work per call at the original sizes: {_count(self.bytes)}B to read and write at least "
                         f"once{split}; {work}"
                         + ("; memory-bound: the bytes set the time" if self.intensity < MEMORY_BOUND_INTENSITY
                            else ""))
        lines.extend(_reduction_line(r) for r in self.reductions[:MAX_REDUCTIONS_SHOWN])
        if self.largest_tensor and self.largest_tensor >= INT32_ELEMENTS:
            lines.append(f"The largest tensor at the original sizes has {self.largest_tensor:,} elements, past 2^31: "
                         f"compute element offsets in 64-bit (e.g. `pid.to(tl.int64) * BLOCK`), or they wrap "
                         f"there; the smaller sizes checked on a CPU cannot show it")
        return "\n".join(lines)

    def fusion_rule(self) -> str:
        """What fusing means for this problem (the fuse strategy's $fusion_rule): the elementwise work after the
        kinds of work it has, or, for elementwise work alone, one kernel for the whole chain ("" when the problem
        is not known: the prompt's generic rule)."""
        if self.how == "unknown":
            return ""
        producers = [PRODUCERS[k] for k in self.kinds if k in PRODUCERS]
        if not producers:
            return "a chain of elementwise operations is one kernel that reads each input once and writes once"
        named = producers[0] if len(producers) == 1 else f"{', '.join(producers[:-1])} or {producers[-1]}"
        return f"the elementwise work before and after {named} belongs in the kernel that computes it"

    def pass_rule(self) -> str:
        """What one pass over the input means for this problem's kinds of work (the one-pass strategies'
        $pass_rule; "" when the problem is not known or has none: the prompt's generic rule)."""
        if self.how == "unknown":
            return ""
        online = any(SOFTMAX_LIKE.search(op) for op in self.ops)
        rules = [ONLINE_RULE if kind == "reduction" and online else PASS_RULES[kind]
                 for kind in self.kinds if kind in PASS_RULES]
        return "; ".join(rules)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ProblemProfile":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def kind_of(name: str) -> str:
    for kind, rule in NAME_RULES:
        if rule.search(name):
            return kind
    return "elementwise"


def from_ops(ops: list[str], op_calls: int, **fields) -> ProblemProfile:
    present = {kind_of(op) for op in ops}
    return ProblemProfile(ops=ops, kinds=[k for k in KINDS if k in present], op_calls=op_calls, **fields)


# ---- in the search's process -------------------------------------------------------------------------------
async def profile_problem(source: str, dtype: str = "fp32", timeout_s: float = PROFILE_TIMEOUT_S) -> ProblemProfile:
    """The profile of a problem (give the source at its original sizes: a --set that shrank it for the CPU does
    not change what the kernel is for). Traced in a child process; from the source's names if that fails."""
    with tempfile.TemporaryDirectory(prefix="ks-profile-") as workdir:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kernelsearch.search.problem_trace", cwd=workdir,
            env=worker_env("cpu", None, Path(workdir)), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(json.dumps({"source": source, "dtype": dtype}).encode()),
                                            timeout_s)
            answer = json.loads(out or b"{}") or {"error": f"the trace gave no answer (exit code {proc.returncode})"}
        except asyncio.TimeoutError:
            answer = {"error": f"the trace took over {timeout_s:g} s"}
        except ValueError:
            answer = {"error": f"the trace gave no answer (exit code {proc.returncode})"}
        finally:  # a timeout or the search's cancellation: the child goes too
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    if answer.pop("ok", False):
        return from_ops(answer.pop("ops"), answer.pop("op_calls"), **answer, how="traced")
    return from_source(source, note=answer.get("error", ""))


def from_source(source: str, note: str = "") -> ProblemProfile:
    """Op names from what the source calls (nn modules it builds, torch functions and tensor methods it calls:
    the helper classes of a Level 3 model included)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ProblemProfile(how="unknown", note=note)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name and name not in FREE_OPS and name not in {"super", "__init__", "Model", "Parameter", "size",
                                                              "dim", "float", "len", "range", "int", "tuple", "list",
                                                              "ModuleList", "Sequential", "append", "extend",
                                                              "get_inputs", "get_init_inputs", "isinstance"}:
                names.append(name)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            names.append("matmul")
    ordered = list(dict.fromkeys(names))
    return from_ops(ordered, len(names), how="source", note=note)


def _reduction_line(r: dict) -> str:
    """`Reduction: mean over dim 1 of a [112, 64, 512, 512] tensor: 64 elements per result, 262144 apart in
    memory (stride)` - where the reduced elements lie decides how a kernel can read them coalesced."""
    shape, stride, dims = r["shape"], r["stride"], r["dims"]
    count = 1
    for d in dims:
        count *= shape[d]
    over = f"dim {dims[0]}" if len(dims) == 1 else f"dims {', '.join(map(str, dims))}"
    head = f"Reduction: {r['op']} over {over} of a {shape} tensor: {count} elements per result"
    if len(dims) == len(shape):
        return f"{head} (the whole tensor)"
    inner = sorted((stride[d], d) for d in range(len(shape)) if shape[d] > 1)
    dense = [d for _, d in inner[:len(dims)]]
    if sorted(dense) == dims and stride[inner[0][1]] == 1:
        return f"{head}, adjacent in memory"
    strides = ", ".join(f"{stride[d]}" for d in dims)
    fastest = inner[0][1] if inner else len(shape) - 1
    return (f"{head}, {strides} elements apart in memory (stride of {over}); the adjacent elements run along "
            f"dim {fastest}, so a coalesced kernel reads along dim {fastest} and accumulates across {over}")


def _count(value: float) -> str:
    for limit, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g} {prefix}"
    return f"{value:.3g} "

