"""The one part of torch.library a candidate may use: `torch.library.custom_op`, to wrap its own kernels as an
operator of a namespace of its own (what makes a kernel compile into a `torch.compile` graph; the generated
attention file does it). Everything else in torch.library changes operators that already exist: an `impl` on
aten::mm in the worker would slow the eager baseline or change what the harness computes. `custom_op` cannot do
that (defining a name that exists is refused), but it would add an operator to a namespace torch owns
(`prims::add` is accepted), and the `Library` behind it (`._lib`) implements any operator of that namespace. So:
the name is a string literal, its namespace is none of torch's (nor of the libraries below), and `._lib` is never
read (reach_checks.BANNED_ATTRIBUTES). At run time the dispatch modes of the worker run such an operator's Python
body under themselves (worker/runtime_guards.py), so what it computes in PyTorch and allocates is still seen."""
from __future__ import annotations

import ast
import re

ALLOWED_PATH = "torch.library.custom_op"
# Namespaces torch's dispatcher holds once torch 2.13 is imported (torch._C._dispatch_get_all_op_names()), read here
# as a list: the checks run in the pool's process, which never imports torch. A namespace starting with "_" is
# refused too (torch's private ones), and those of libraries whose operators a reference may call in the worker.
TORCH_NAMESPACES = frozenset({
    "aten", "prims", "prim", "c10d", "c10d_functional", "debug_mode_ops", "debugprims", "export", "flex_lib", "fsdp",
    "inductor", "inductor_prims", "mkl", "mkldnn", "mkldnn_prepacked", "onednn", "onnx", "onnx_symbolic", "profiler",
    "quantization", "quantized", "rngprims", "sparse", "static_runtime", "streams", "symm_mem", "higher_order",
    "cuda", "nccl", "tensorrt", "vulkan", "xnnpack", "metal", "mps",
})
LIBRARY_NAMESPACES = frozenset({"torchvision", "torchaudio", "torchao", "torchtext", "xformers", "flash_attn", "triton",
                                "fbgemm", "mmcv", "apex", "transformer_engine"})
NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)::[A-Za-z_][A-Za-z0-9_]*$")


def custom_op_violation(call: ast.Call) -> str | None:
    """Why a call of torch.library.custom_op is refused, or None."""
    name = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        return "torch.library.custom_op with a computed name (the namespace must be visible: \"myops::name\")"
    found = NAME.match(name.value)
    if not found:
        return f"torch.library.custom_op({name.value!r}): the name must be \"namespace::name\""
    namespace = found.group(1)
    if namespace.startswith("_") or namespace in TORCH_NAMESPACES | LIBRARY_NAMESPACES:
        return (f"torch.library.custom_op({name.value!r}) adds to the namespace {namespace!r}, which torch or a "
                f"library owns: use a namespace of your own")
    return None
