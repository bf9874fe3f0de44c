"""A problem's or a candidate's source loaded as a module, and its model built from a seed: the worker's job and
the answer keeper load and build alike, so that both hold the same reference."""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
from pathlib import Path

from ..errors import Outcome, describe
from ..verdict import Status

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # --dtype -> torch's name
# A model with this many parameters is initialized on the device: KernelBench L3 2_ShallowWideMLP's 2.1G took
# ~10 s a build on the CPU (initialized there, then copied), and a job builds its model up to six times (the
# worker's reference and candidate, the keeper's reference, each again at a second shape): 75 s untimed.
ON_DEVICE_PARAMETERS = 1 << 28


def import_source(source: str, name: str, path: Path):
    """Load source as a module from a real file (Triton reads kernel source through inspect), keyed by its text."""
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    module.__ks_key__ = hashlib.sha256(source.encode()).hexdigest()[:16]
    return module


def load_problem(load):
    try:
        return load()
    except Exception as e:
        raise Outcome(Status.PROBLEM_ERROR, f"the problem failed to load: {describe(e)}") from None


def build_model(torch, cls, init_inputs, seed: int, device: str, dtype, like=None):
    """cls(*init_inputs) on the device, from the seed: reference and candidate start from the same parameters.
    `like`: the problem's reference class, whose size decides where parameters are initialized (the CPU's
    generator, or the device's for a large model), so that a candidate's come from the same generator."""
    on_device = device != "cpu" and parameter_count(torch, like or cls, init_inputs) >= ON_DEVICE_PARAMETERS
    torch.manual_seed(seed)
    with torch.device(device) if on_device else contextlib.nullcontext():
        model = cls(*init_inputs)
    return model.to(device=device, dtype=dtype)


def parameter_count(torch, cls, init_inputs) -> int:
    """Parameters of cls(*init_inputs) built on the meta device (no memory, no time); 0 where that fails. Only for
    the problem's own classes: a candidate's __init__ may build extensions."""
    try:
        with torch.device("meta"):
            model = cls(*init_inputs)
        return sum(p.numel() for p in model.parameters())
    except Exception:
        return 0
