"""The problem profile's child process: the reference's forward run once on the meta device under a dispatch mode
that names every ATen op and reads each reduction's dims (problem_profile.py starts it and reads its answer). The
problem's code runs here, never in the search's process."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from ..verify.harness.memory import tensor_bytes
from ..verify.harness.modules import DTYPES
from .problem_profile import FREE_OPS, WHOLE_REDUCTIONS, kind_of


def trace(source: str, dtype_name: str) -> dict:
    """The reference's ops, FLOPs and bytes from one forward on the meta device."""
    # torch (verify.harness.gpu_timing imports it) loads inside main()'s try: where it cannot be imported, that is
    # the answer
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from ..verify.harness.gpu_timing import work_of_call

    dtype = getattr(torch, DTYPES[dtype_name])
    names: list[str] = []
    reductions: list[dict] = []

    largest = [0]  # elements of the largest tensor an op makes (inputs and parameters are counted below)

    class NameOps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if not func.is_view and name.rstrip("_") not in FREE_OPS and name not in FREE_OPS:
                names.append(name.rstrip("_") if not name.startswith("_") else name)
                found = reduction_of(func, args, kwargs or {}, torch.Tensor)
                if found and found not in reductions:
                    reductions.append(found)
            made = func(*args, **(kwargs or {}))
            largest[0] = max([largest[0], *(t.numel() for t in torch.utils._pytree.tree_leaves(made)
                                            if isinstance(t, torch.Tensor))])
            return made

    path = Path(tempfile.mkdtemp()) / "problem.py"  # a real file: some problems read their own source
    path.write_text(source)
    namespace = {"__name__": "ks_profiled_problem", "__file__": str(path)}
    exec(compile(source, str(path), "exec"), namespace)
    with torch.device("meta"):
        torch.manual_seed(0)
        inputs = [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                  for x in namespace["get_inputs"]()]
        model = namespace["Model"](*namespace["get_init_inputs"]()).to(dtype)
        with NameOps():
            flops, moved = work_of_call(model, inputs)
    ordered = list(dict.fromkeys(names))
    read = tensor_bytes(inputs) + tensor_bytes(model.parameters())
    given = [t.numel() for t in [*inputs, *model.parameters()] if isinstance(t, torch.Tensor)]
    return {"ops": ordered, "op_calls": len(names), "flops": flops, "bytes": moved, "read_bytes": read,
            "reductions": reductions, "largest_tensor": max([largest[0], *given])}


def reduction_of(func, args: tuple, kwargs: dict, tensor_type) -> dict | None:
    """The dims a reduction op reduces over its first argument, read from the op's schema (its `dim` argument;
    none: all dims; layer norm: the normalized trailing dims); None for any other op or call it cannot read."""
    name = func.overloadpacket.__name__.lstrip("_")
    if not args or not isinstance(args[0], tensor_type) or kind_of(name) != "reduction" or args[0].dim() == 0:
        return None
    x, dims = args[0], None
    positions = {a.name: i for i, a in enumerate(func._schema.arguments)}
    if "dim" in positions:
        i = positions["dim"]
        dims = args[i] if i < len(args) else kwargs.get("dim")
        dims = list(range(x.dim())) if dims is None or dims == [] else [dims] if isinstance(dims, int) else dims
    elif name == "native_layer_norm":
        dims = list(range(x.dim() - len(args[1]), x.dim()))
    elif name in WHOLE_REDUCTIONS:
        dims = list(range(x.dim()))
    if not dims or not all(isinstance(d, int) for d in dims):
        return None
    return {"op": name, "shape": list(x.shape), "stride": list(x.stride()), "dims": sorted(d % x.dim() for d in dims)}


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the problem's prints go to stderr, never into the answer
    try:
        answer = {"ok": True, **trace(request["source"], request["dtype"])}
    except BaseException as e:  # noqa: BLE001 - any failure of the problem's code is an answer, not a crash
        answer = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    answer_stream.write(json.dumps(answer))
    answer_stream.close()


if __name__ == "__main__":
    main()
