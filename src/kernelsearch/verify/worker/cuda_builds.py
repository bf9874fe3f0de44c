"""CUDA C++ builds made off the GPU: what identifies one, where it is kept, and how a GPU worker loads it.

A `load_inline` build takes 60-90 s (nvcc on torch/extension.h); made inside a GPU worker it held the GPU for all
that time, and eight CUDA candidates verified one after another. So the pool builds them first, several at once, in
CPU processes of their own (builder.py, in the same sandbox and under the same run-time wall as a worker), into a
cache; the GPU worker's `load_inline` then finds the module built and only loads it. A call it does not find (one
made in forward, or sources that change from run to run) builds in the worker as before.

A build is keyed by the candidate's whole source and the call's arguments (sources, flags), the GPU's architecture
and torch's version: the same candidate builds once per pool (verified again, re-timed, re-checked in a fresh worker),
and no candidate can plant a module that another candidate loads."""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
from pathlib import Path

CACHE_VARIABLE = "KS_BUILD_CACHE"  # the pool's cache directory, shown read-only to its workers
MANIFEST = "built.json"  # in a build's directory: {"file": "<module>.so"}, written by the pool
IGNORED = ("build_directory", "verbose")  # arguments that do not change what is built


def build_call(load_inline, args: tuple, kwargs: dict) -> dict:
    """A load_inline call's arguments by name, as JSON values (sources as lists), without those that do not change
    the module built."""
    bound = inspect.signature(load_inline).bind(*args, **kwargs)
    call = {}
    for name, value in bound.arguments.items():
        if name in IGNORED:
            continue
        if name.endswith("_sources") and isinstance(value, str):
            value = [value]
        call[name] = value
    return json.loads(json.dumps(call, sort_keys=True, default=str))


def build_key(candidate_source: str, call: dict, arch: str) -> str:
    import torch  # here, not above: the pool reads this module's names and never loads torch
    text = json.dumps({"candidate": candidate_source, "call": call, "arch": arch, "torch": torch.__version__},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def target_arch() -> str:
    """The architecture builds are made for: TORCH_CUDA_ARCH_LIST, which the pool gives its builders and each GPU
    worker sets from its own device (worker.py) before any candidate runs."""
    return os.environ.get("TORCH_CUDA_ARCH_LIST", "")


class Prebuilt:
    """A GPU worker's view of the pool's build cache: the module for a load_inline call of the candidate in
    progress, where a builder made it."""

    def __init__(self, cache_dir: str | None):
        self.cache = Path(cache_dir) if cache_dir else None
        self.candidate: str | None = None  # the source of the candidate being verified (set by the job)
        self.loaded = 0  # load_inline calls answered from the cache in this job (the verdict says so)

    def load(self, load_inline, args: tuple, kwargs: dict):
        """The built module, or None where the cache has none (then load_inline builds it here)."""
        if self.cache is None or self.candidate is None:
            return None
        try:
            key = build_key(self.candidate, build_call(load_inline, args, kwargs), target_arch())
            manifest = json.loads((self.cache / key / MANIFEST).read_text())
        except (TypeError, ValueError, OSError):
            return None
        path = self.cache / key / manifest["file"]
        spec = importlib.util.spec_from_file_location(path.name.split(".")[0], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.loaded += 1
        return module
