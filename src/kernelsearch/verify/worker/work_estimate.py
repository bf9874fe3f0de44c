"""How much work one forward of a problem is, measured on the meta device (nothing allocated, nothing run)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


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
