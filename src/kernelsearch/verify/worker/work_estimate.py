"""How much work one forward of a problem is, measured on the meta device (nothing allocated, nothing run), and
whether the CPU interpreter can take it."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import Outcome
from ..verdict import Status


def estimate_work(problem) -> tuple[int, float]:
    """(tensor elements touched: inputs + parameters + outputs, FLOPs of matmuls/convolutions) for one call.
    Falls back to the inputs alone when the model cannot run on the meta device."""
    with torch.device("meta"):
        inputs = problem.get_inputs()
        elements = sum(x.numel() for x in inputs if isinstance(x, torch.Tensor))
        try:
            model = problem.Model(*problem.get_init_inputs())
            elements += sum(p.numel() for p in model.parameters())
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                out = model(*inputs)
            outs = out if isinstance(out, (tuple, list)) else [out]
            elements += sum(o.numel() for o in outs if isinstance(o, torch.Tensor))
            return elements, float(counter.get_total_flops())
        except Exception:
            return elements, 0.0


def too_large_for_the_interpreter(problem, req) -> Outcome | None:
    """The interpreter runs ~1000x slower than torch: problems that would take hours are refused, saying how to
    shrink them with --set."""
    elements, flops = estimate_work(problem)
    if elements <= req.max_cpu_elements and flops <= req.max_cpu_flops:
        return None
    constants = ", ".join(f"{k}={v}" for k, v in size_constants(problem).items()) or "none found"
    return Outcome(Status.PROBLEM_ERROR, (
        f"too large for the CPU interpreter: {elements:.3g} tensor elements and {flops:.3g} FLOPs per call "
        f"(limits {req.max_cpu_elements:.3g} and {req.max_cpu_flops:.3g}); shrink it with --set NAME=VALUE "
        f"(size constants: {constants}), or run on a GPU"))


def size_constants(problem) -> dict:
    return {k: v for k, v in vars(problem).items()
            if not k.startswith("_") and ((isinstance(v, int) and not isinstance(v, bool))
                                          or (isinstance(v, tuple) and v and all(isinstance(x, int) for x in v)))}
