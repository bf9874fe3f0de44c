"""A problem's or a candidate's source loaded as a module, and its model built from a seed: the worker's job and
the answer keeper load and build alike, so that both hold the same reference."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from .errors import Outcome, describe

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # --dtype -> torch's name


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
        raise Outcome("problem_error", f"the problem failed to load: {describe(e)}") from None


def build_model(torch, cls, init_inputs, seed: int, device: str, dtype):
    """cls(*init_inputs) on the device, from the seed: reference and candidate start from the same parameters."""
    torch.manual_seed(seed)
    return cls(*init_inputs).to(device=device, dtype=dtype)
