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
import functools
import re

ALLOWED_PATH = "torch.library.custom_op"
# Libraries whose operators a problem's reference may call in the worker's baselines; torch's own namespaces are
# read from the dispatcher (33 on torch 2.13: aten, prims, inductor, quantized, c10d, ...).
LIBRARY_NAMESPACES = {"torchvision", "torchaudio", "torchao", "torchtext", "xformers", "flash_attn", "triton",
                      "fbgemm", "mmcv", "apex", "transformer_engine"}
NAME = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)::[A-Za-z_][A-Za-z0-9_]*$")


@functools.lru_cache(maxsize=1)
def torch_namespaces() -> frozenset[str]:
    """Operator namespaces registered once torch is imported (torch imported here: called only by a process that
    has it, the checker's and the worker's)."""
    import torch
    return frozenset(name.split("::")[0] for name in torch._C._dispatch_get_all_op_names())


def custom_op_violation(call: ast.Call) -> str | None:
    """Why a call of torch.library.custom_op is refused, or None."""
    name = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        return "torch.library.custom_op with a computed name (the namespace must be visible: \"myops::name\")"
    found = NAME.match(name.value)
    if not found:
        return f"torch.library.custom_op({name.value!r}): the name must be \"namespace::name\""
    namespace = found.group(1)
    if namespace in LIBRARY_NAMESPACES or namespace in torch_namespaces():
        return (f"torch.library.custom_op({name.value!r}) adds to the namespace {namespace!r}, which torch or a "
                f"library owns: use a namespace of your own")
    return None
